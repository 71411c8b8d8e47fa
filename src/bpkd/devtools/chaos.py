"""Kill-anywhere check: the DAG, SIGKILLed inside every kind of stage and rerun after
each kill, ends exactly where an uninterrupted run ends.

    python -m bpkd.devtools.chaos [--seed 0] [--profile smoke] [--dir DIR]

Two scratch copies of the repository (``profile`` selected): ``straight`` runs
``dvc repro`` once, timing each stage; ``chaos`` runs ``dvc repro`` and is SIGKILLed
(the whole process group: DVC and the stage it runs), then ``dvc repro`` again, once
per planned kill, then once to the end. The plan (:func:`plan`) covers every stage
kind of ``dvc.yaml`` (``prepare``, ``teacher``, ``baseline``, ``method``, ``distill``,
the evaluations, ``complexity``, ``charts``, ``qualitative``, ``boundary``,
``report``), in the DAG's order: in the teacher's stage two kills aimed at files, the
moment a training checkpoint appears in a work dir (mid-checkpoint) and the moment a
temporary sibling of an exported model appears (mid-export); in the first stage of
each other kind one kill at a seeded moment between 20 % and 60 % of that stage's
uninterrupted run time after DVC starts it. Stage times vary between runs (a busy
host), so a stage that finishes before its kill is run again on its own (``dvc repro
--force --single-item``) with the delay halved, up to :data:`RETRIES` times: the kill
lands inside the stage it aims at, and the next ``dvc repro`` goes on from there.
Passes when every planned kill hit its stage, the final ``dvc.lock`` (every output's md5, step logs included) equals
the straight run's, ``dvc status`` is clean, and no temporary file, partial download
or work dir is left behind. Since every stage of the chaos copy ran again from
scratch (or resumed), an equal ``dvc.lock`` also shows that each stage reproduces bit
for bit. Prints each kill (moment, stage, what was on disk), the wall times, and a
last JSON line.

The test suite runs :func:`check` with its shared smoke run as the straight copy
(``tests/test_chaos.py``), so CI pays for one extra DAG, not two.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..study.queue import RUNNING
from .scratch import copy_repo, run, tool_env

# What a killed stage may leave behind that a finished pipeline must not hold.
LEFTOVER_PATTERNS = (".*.tmp-*", ".*.old-*", "*.part")
AIMS = {"checkpoint": "data/work/**/iter_*.pth", "export": "data/models/**/.*.pth.tmp-*"}
RETRIES = 3  # forced reruns of a stage that ended before its kill, each with half the delay


@dataclass(frozen=True)
class Kill:
    """Where a planned kill lands: at a file of kind ``aim`` appearing, or ``delay`` s
    after DVC announces ``stage``."""
    aim: str | None = None
    stage: str | None = None
    delay: float | None = None
    forced: bool = False  # a rerun of ``stage`` alone (``dvc repro -f -s``): it ended before an earlier try

    def describe(self) -> str:
        if self.aim:
            return f"when a {self.aim} file appeared"
        return f"{self.delay:.1f} s into {self.stage}" + (" (run again alone)" if self.forced else "")

    def repro_args(self) -> list[str]:
        return ["--force", "--single-item", self.stage] if self.forced else []


def kind(stage: str) -> str:
    """A stage's kind: its name in ``dvc.yaml`` (``distill@synthetic-…-bpkd-0`` -> ``distill``)."""
    return stage.split("@", 1)[0]


# The `dvc repro` process groups running now, so that a caller running this module in a
# background thread (the test suite) can end them: stop_all().
_RUNNING: set[subprocess.Popen] = set()


def _start_repro(repo: Path, env: dict | None, args: list[str] = (), **kwargs) -> subprocess.Popen:
    proc = subprocess.Popen(["dvc", "repro", *args], cwd=repo, env=env or tool_env(), start_new_session=True, text=True,
                            **kwargs)
    _RUNNING.add(proc)
    return proc


def stop_all() -> None:
    """SIGKILL every `dvc repro` this module started that still runs (with its stage)."""
    for proc in list(_RUNNING):
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _RUNNING.discard(proc)


def timed_repro(repo: Path, env: dict | None = None) -> tuple[dict[str, float], str]:
    """``dvc repro`` in ``repo`` (in ``env``, default :func:`tool_env`): ``({stage: seconds
    from its announcement to the next}, the whole output)``, in the order DVC ran them.
    Raises if it fails."""
    starts: list[tuple[str, float]] = []
    lines = []
    t0 = time.monotonic()
    proc = _start_repro(repo, env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=1)
    for line in proc.stdout:
        lines.append(line)
        found = RUNNING.search(line)
        if found:
            starts.append((found.group(1), time.monotonic() - t0))
    end = time.monotonic() - t0
    log = "".join(lines)
    _RUNNING.discard(proc)
    if proc.wait() != 0:
        raise RuntimeError(f"dvc repro failed in {repo} ({proc.returncode}):\n{log[-4000:]}")
    bounds = [t for _, t in starts[1:]] + [end]
    return {name: round(stop - start, 2) for (name, start), stop in zip(starts, bounds)}, log


def plan(durations: dict[str, float], seed: int) -> list[Kill]:
    """In the DAG's order (a stage that has finished cannot be killed): at the teacher's
    stage the two aimed kills, in the first stage of each other kind one kill at a seeded
    20-60 % of its uninterrupted time, late enough that the stage has started its work,
    early enough that it has not finished."""
    rng = random.Random(seed)
    kills, seen = [], set()
    for stage, seconds in durations.items():
        if kind(stage) in seen:
            continue
        seen.add(kind(stage))
        if kind(stage) == "teacher":
            kills += [Kill(aim="checkpoint"), Kill(aim="export")]
        else:
            kills.append(Kill(stage=stage, delay=round(rng.uniform(0.2, 0.6) * seconds, 2)))
    return kills


def _aimed(repo: Path, aim: str, before: set[Path]) -> bool:
    """A file of kind ``aim`` that was not there when the run started has appeared."""
    return any(p not in before for p in repo.glob(AIMS[aim]))


def _run_until(repo: Path, kill: Kill | None, env: dict | None, poll: float = 0.005) -> tuple[bool, str, float]:
    """Start ``dvc repro``; SIGKILL it as ``kill`` says (None: let it finish). A kill
    aimed at a stage that DVC leaves for the next one before the delay is spent fires at
    once (in the next stage's start, which its rerun repeats); the caller sees that the
    stage running was not the one aimed at. Returns (killed, the stage that was running,
    seconds)."""
    with tempfile.NamedTemporaryFile(mode="w+", suffix=".log") as out, open(out.name) as reader:
        t0 = time.monotonic()
        proc = _start_repro(repo, env, kill.repro_args() if kill and kill.stage else [],
                            stdout=out, stderr=subprocess.STDOUT)
        killed = False
        before = set(repo.glob(AIMS[kill.aim])) if kill and kill.aim else set()
        log, announced, at = "", None, -1
        while proc.poll() is None:
            if kill and kill.aim and _aimed(repo, kill.aim, before):
                break
            if kill and kill.stage:
                log += reader.read()
                if announced is None and (at := log.find(f"Running stage '{kill.stage}'")) >= 0:
                    announced = time.monotonic()
                if announced is not None and (time.monotonic() - announced >= kill.delay
                                              or RUNNING.search(log, at + 1)):  # it ended: a later stage runs
                    break
            time.sleep(poll)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            killed = True
        proc.wait()
        _RUNNING.discard(proc)
        seconds = time.monotonic() - t0
        out.seek(0)
        log = out.read()
    if not killed and proc.returncode != 0:
        raise RuntimeError(f"dvc repro failed in {repo} ({proc.returncode}):\n{log[-4000:]}")
    found = RUNNING.findall(log)
    return killed, found[-1] if found else "(dvc, between stages)", seconds


# What a training run cost (bpkd.training.cost): timings, different in every run of a
# stage, so the bit-for-bit comparison leaves them out; the report's tables show each
# row's train time from them, so those two are compared with that number masked.
TIMINGS = "metrics/cost/"
TIMED = ("README.md", "metrics/tables.md")
TRAIN_TIME = re.compile(r"\d+\.\d\d×")  # the spread table's "train time vs S" cells (bpkd.report.spread)


def without_timings(lock: dict) -> dict:
    """A dvc.lock without the cost records (outputs and deps) and without the hashes of
    the outputs that show them (:data:`TIMED`, compared by :func:`timed_differ`)."""
    def keep(entries):
        return [{"path": e["path"]} if e["path"] in TIMED else e for e in entries or []
                if not f"{e['path'].rstrip('/')}/".startswith(TIMINGS)]  # the folder itself or a file in it

    return {**lock, "stages": {name: {**stage, "outs": keep(stage.get("outs")), "deps": keep(stage.get("deps"))}
                               for name, stage in lock["stages"].items()}}


def timed_differ(a: Path, b: Path) -> list[str]:
    """The :data:`TIMED` outputs whose texts differ in more than their train-time cells."""
    def masked(path: Path) -> str | None:
        return TRAIN_TIME.sub("×", path.read_text()) if path.is_file() else None

    return [name for name in TIMED if masked(a / name) != masked(b / name)]


def kill_inside(repo: Path, planned: Kill, env: dict | None = None, number: int = 1, log=print) -> list[dict]:
    """Run ``dvc repro`` in ``repo`` and kill it as ``planned`` says; a kill aimed at a
    stage that ended first is tried again on that stage alone, with the delay halved, up
    to :data:`RETRIES` times. One event (a dict) per try; each try logged as a line."""
    events = []
    for attempt in range(RETRIES + 1):
        killed, stage, seconds = _run_until(repo, planned, env)
        state = leftovers(repo)
        events.append(dict(kill=number, planned=planned.describe(), killed=killed, stage=stage,
                           at_s=round(seconds, 1), left_on_disk=state[:6]))
        log(f"kill {number}: {'SIGKILL' if killed else 'finished before the kill'} {planned.describe()}, in {stage} "
            f"({seconds:.1f} s into the run); on disk: {state[:6] or 'nothing temporary'}")
        if not planned.stage or (killed and stage == planned.stage) or attempt == RETRIES:
            return events
        planned = Kill(stage=planned.stage, delay=round(planned.delay / 2, 2), forced=True)
    return events


def _outputs(lock: dict) -> dict[str, str]:
    """``{path: md5}`` of every file output listed in a dvc.lock, the timings and the
    outputs that show them left out."""
    outs = {}
    for stage in without_timings(lock)["stages"].values():
        for out in stage.get("outs", []):
            if "md5" in out:
                outs[out["path"]] = out["md5"]
    return outs


def leftovers(repo: Path) -> list[str]:
    found = [str(p.relative_to(repo)) for pattern in LEFTOVER_PATTERNS
             for top in ("data", "metrics") for p in (repo / top).rglob(pattern)]
    work = repo / "data" / "work"
    found += [str(p.relative_to(repo)) for p in work.rglob("*") if p.is_file()] if work.exists() else []
    return sorted(found)


def check(root: Path, seed: int, profile: str, straight: Path | None = None,
          durations: dict[str, float] | None = None, log=print, env: dict | None = None) -> dict:
    """The kill-anywhere check in ``root``. With ``straight`` (a copy of the same sources
    already reproduced, and its ``durations`` from :func:`timed_repro`), that run is the
    reference and no uninterrupted run is made here. Progress lines go to ``log``; the
    `dvc repro` runs get ``env`` (default :func:`tool_env` at each start)."""
    t_straight = None
    if straight is not None:  # the same sources as the reference run: its committed files
        chaos = copy_repo(root / "chaos", profile, src=straight, untracked=False)
    else:  # both copies first: the same sources, even if the working tree changes meanwhile
        chaos = copy_repo(root / "chaos", profile)
        straight = copy_repo(root / "straight", profile)
        t0 = time.monotonic()
        durations, _ = timed_repro(straight, env)
        t_straight = time.monotonic() - t0
        log(f"uninterrupted dvc repro: {t_straight:.0f} s")
    kills = plan(durations, seed)
    events = []
    t0 = time.monotonic()
    for i, planned in enumerate(kills, 1):
        events += kill_inside(chaos, planned, env, i, log)
    _, _, seconds = _run_until(chaos, None, env)
    t_chaos = time.monotonic() - t0
    log(f"final dvc repro: {seconds:.0f} s; chaos total {t_chaos:.0f} s")

    lock_a = yaml.safe_load((straight / "dvc.lock").read_text())
    lock_b = yaml.safe_load((chaos / "dvc.lock").read_text())
    outs_a, outs_b = _outputs(lock_a), _outputs(lock_b)
    differing = sorted({p for p in outs_a.keys() | outs_b.keys() if outs_a.get(p) != outs_b.get(p)}
                       | set(timed_differ(straight, chaos)))
    status = run(["dvc", "status"], chaos).stdout
    # A planned kill counts when one of its tries killed the DAG inside the stage aimed at
    # (a file-aimed kill: inside whatever stage wrote the file).
    aimed = {i: k.stage for i, k in enumerate(kills, 1)}
    hit = [e for e in events if e["killed"] and aimed[e["kill"]] in (None, e["stage"])]
    result = dict(
        kills=len({e["kill"] for e in hit}), planned=len(kills), seed=seed, profile=profile,
        kinds=sorted({kind(s) for s in durations}), kinds_hit=sorted({kind(e["stage"]) for e in hit}),
        lock_identical=without_timings(lock_a) == without_timings(lock_b), outputs=len(outs_a),
        differing_outputs=differing,
        leftovers=leftovers(chaos), dvc_status_clean="up to date" in status,
        seconds=dict(straight=round(t_straight) if t_straight else None, chaos=round(t_chaos)), events=events)
    result["passed"] = (result["kills"] == len(kills) and result["kinds_hit"] == result["kinds"]
                        and result["lock_identical"] and not differing and not result["leftovers"]
                        and result["dvc_status_clean"])
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--dir", help="where to make the two copies (default: a temporary folder, removed)")
    args = ap.parse_args(argv)
    def log(line: str) -> None:
        print(line, flush=True)

    if args.dir:
        Path(args.dir).mkdir(parents=True, exist_ok=True)
        result = check(Path(args.dir), args.seed, args.profile, log=log)
    else:
        with tempfile.TemporaryDirectory(prefix="bpkd-chaos-") as tmp:
            result = check(Path(tmp), args.seed, args.profile, log=log)
    print(("PASSED" if result["passed"] else "FAILED") + f": {result['kills']} of {result['planned']} kills, "
          f"stage kinds hit {result['kinds_hit']} of {result['kinds']}; dvc.lock identical: "
          f"{result['lock_identical']}; differing outputs: {result['differing_outputs']}; "
          f"leftovers: {result['leftovers']}")
    print(json.dumps({k: v for k, v in result.items() if k != "events"}))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
