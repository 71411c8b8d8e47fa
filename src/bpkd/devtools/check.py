"""Run every stage of the pipeline on the ``smoke`` profile in a scratch copy (``make check``).

The copy (:func:`bpkd.devtools.scratch.copy_repo`: the working tree's files, with the
new ones not yet added to git, without ``dvc.lock`` and ``metrics/``) lives in a
temporary folder with its own git repository and DVC cache, so the working tree's
``dvc.lock``, ``metrics/``, ``data/`` and README are never touched. ``dvc repro``
runs there (each stage is printed as it starts, the whole output goes to the copy's
``check.log``); then every stage of ``dvc stage list`` must be recorded in the copy's
``dvc.lock`` and ``dvc status`` must be clean. Prints the stage count, the wall time
and the results table the smoke report wrote (``metrics/tables.md`` in the copy),
and exits non-zero if anything failed. A few minutes on 2 CPU cores.

The copy is deleted afterwards, unless ``--keep`` (its path is printed) or the check
failed (kept to look into, its path printed).

    python -m bpkd.devtools.check [--keep] [--profile smoke]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from .scratch import copy_repo, run, tool_env


@dataclass
class Result:
    repo: Path
    stages: list[str]  # every stage of the copy's dvc.yaml, as `dvc stage list` names them
    missing: list[str]  # stages not recorded in the copy's dvc.lock after the run
    status: str  # `dvc status` after the run
    tables: str  # the copy's metrics/tables.md ('' when the report did not write it)

    @property
    def ok(self) -> bool:
        return not self.missing and "up to date" in self.status and bool(self.tables)


LOG = "check.log"  # in the copy: dvc repro's whole output


def repro(repo: Path, echo=print) -> int:
    """``dvc repro`` in ``repo``, its whole output in ``repo/check.log``; each stage it
    starts passed to ``echo`` with the time since the start. Returns its exit code."""
    start = time.monotonic()
    with open(repo / LOG, "w") as log:
        proc = subprocess.Popen(["dvc", "repro"], cwd=repo, env=tool_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
        for line in proc.stdout:
            log.write(line)
            if line.startswith("Running stage"):
                echo(f"[{time.monotonic() - start:6.0f} s] {line.strip()}")
        return proc.wait()


def unrecorded(stages: list[str], lock: dict | None) -> list[str]:
    """The stages of ``stages`` that the parsed ``dvc.lock`` ``lock`` does not record."""
    locked = set((lock or {}).get("stages", {}))
    return [s for s in stages if s not in locked]


def inspect(repo: Path) -> Result:
    """What a finished run left in ``repo``: every stage ran and nothing is stale."""
    stages = run(["dvc", "stage", "list", "--name-only"], repo).stdout.split()
    lock_file = repo / "dvc.lock"
    lock = yaml.safe_load(lock_file.read_text()) if lock_file.is_file() else None
    status = run(["dvc", "status"], repo, check=False)
    tables = repo / "metrics" / "tables.md"
    return Result(repo=repo, stages=stages, missing=unrecorded(stages, lock),
                  status=(status.stdout + status.stderr).strip(), tables=tables.read_text() if tables.is_file() else "")


def check(repo: Path, echo=print) -> Result:
    """``dvc repro`` in the scratch copy ``repo``, then :func:`inspect`; a failed repro
    shows as the stages it did not record."""
    code = repro(repo, echo)
    result = inspect(repo)
    if code != 0 and not result.missing:
        result.missing = ["(dvc repro exited with code %d)" % code]
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bpkd.devtools.check", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", action="store_true", help="keep the scratch copy and print its path")
    ap.add_argument("--profile", default="smoke", help="params.yaml profile the copy runs (default: smoke)")
    args = ap.parse_args(argv)

    repo = Path(tempfile.mkdtemp(prefix="bpkd-check-"))
    start = time.monotonic()
    try:
        copy_repo(repo, profile=args.profile)
        result = check(repo)
    except Exception as err:  # the copy itself failed (git, params): say so, keep it to look into
        print(f"check: FAILED before the pipeline finished: {err}\nscratch copy kept: {repo}", file=sys.stderr)
        return 1
    seconds = time.monotonic() - start
    print()
    if result.tables:
        print(result.tables)
    ran = len(result.stages) - len(result.missing)
    print(f"check: {ran}/{len(result.stages)} stages of the {args.profile} profile ran in {seconds:.0f} s "
          f"({seconds / 60:.1f} min)")
    if not result.ok:
        log = repo / LOG
        if log.is_file():
            print("".join(log.read_text().splitlines(keepends=True)[-60:]), file=sys.stderr)
        print("check: FAILED" + (f"; not run: {', '.join(result.missing)}" if result.missing else "")
              + ("" if "up to date" in result.status else f"; dvc status:\n{result.status}")
              + ("" if result.tables else "; no metrics/tables.md") + f"\nscratch copy kept: {repo}", file=sys.stderr)
        return 1
    if args.keep:
        print(f"check: passed; scratch copy kept: {repo}")
    else:
        shutil.rmtree(repo, ignore_errors=True)
        print("check: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
