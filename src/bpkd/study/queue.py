"""Running a study's points as DVC experiments through DVC's queue (or, with
``workspace``, one after another in the workspace).

A point whose named experiment already exists on the current commit with the same
params is reused as it is (nothing queued, nothing trained); the others are queued
with ``dvc exp run --queue --name <study>-<point> -S key=value … [targets]`` and run by
``dvc queue start``. Inside each experiment ``dvc repro`` reruns only the stages
that read a swept param (and DVC's run-cache restores any stage it has run before
with the same inputs), so a point costs the branch its knobs reach.
"""
from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import yaml

from .records import Record, get, show
from .spec import Point, Study, StudyError

RUNNING = re.compile(r"Running stage '([^']+)'")  # DVC's line as it starts a stage (also bpkd.devtools.chaos)


def _same(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    return a == b


def matches(record: Record, point: Point) -> bool:
    return all(_same(get(record.params, k), v) for k, v in point.overrides.items())


def _set_arg(key: str, value) -> str:
    """``key=value`` for ``-S``, the value in YAML flow syntax (5.0, gt_pixels, true, [0, 1])."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000)
    return f"{key}={text.removesuffix(chr(10) + '...' + chr(10)).strip()}"  # a scalar ends with "\n...\n"


def _dvc(args: list[str], cwd: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(["dvc", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise StudyError(f"dvc {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return proc


def run(study: Study, cwd: str = ".", jobs: int = 1, poll: float = 5.0, log=print,
        workspace: bool = False) -> dict[str, str]:
    """Queue and run the points that have no finished experiment yet; wait for them.
    ``workspace``: run them instead one after another in the workspace (``dvc exp run``
    without ``--queue``), so that each reuses what the workspace has run already (its
    ``dvc.lock``), not only what the commit holds; each point's knobs are set on the
    params the study started from, and the workspace ends with the last point's params
    and outputs (``dvc exp apply <name>`` brings back another).

    Returns ``{experiment name: "reused" | "ran"}``.
    """
    started = time.monotonic()
    _, experiments = show(cwd)
    done = {r.name: r for r in experiments if r.state == "success"}
    outcome: dict[str, str] = {}
    params = Path(cwd, "params.yaml")
    start = params.read_text()  # each workspace point sets its knobs on these params, not on the last point's
    # A killed workspace study leaves params.yaml with its running point's knobs: the
    # params it started from are kept beside DVC's own temporary files until it ends, and
    # a rerun starts from them, not from the interrupted point's.
    started_from = Path(cwd, ".dvc", "tmp", f"study-{study.name}.params.yaml")
    if workspace and started_from.exists():
        start = started_from.read_text()
        params.write_text(start)
        log(f"study {study.name}: an earlier run in the workspace was interrupted; params.yaml is back to "
            f"the params it started from (.dvc/tmp/{started_from.name})")
    elif workspace:
        started_from.parent.mkdir(parents=True, exist_ok=True)
        started_from.write_text(start)
    for point in study.points:
        name = point.experiment(study.name)
        if name in done and matches(done[name], point):
            outcome[name] = "reused"
            log(f"{name}: reused (experiment {done[name].rev[:7]} of this commit)")
            continue
        sets = [a for k, v in point.overrides.items() for a in ("-S", _set_arg(k, v))]
        args = ["exp", "run", *([] if workspace else ["--queue"]), "--name", name, *sets, *point.targets]
        if name in {r.name for r in experiments}:
            args.append("--force")  # a failed or stale run of the same name is replaced
        what = ', '.join(_set_arg(k, v) for k, v in point.overrides.items()) or 'defaults'
        if workspace:
            log(f"{name}: running in the workspace ({what})")
            params.write_text(start)
            ran = RUNNING.findall(_dvc(args, cwd).stdout)
            log(f"{name}: done, {time.monotonic() - started:.0f} s into the study; "
                + (f"ran {', '.join(ran)}" if ran else "nothing ran (the workspace had run it all)"))
        else:
            _dvc(args, cwd)
            log(f"{name}: queued ({what})")
        outcome[name] = "ran"
    queued = [n for n, how in outcome.items() if how == "ran"]
    if workspace:
        started_from.unlink()
    if not queued or workspace:
        if queued:
            log(f"study {study.name}: {len(queued)} experiment(s) ran; {time.monotonic() - started:.0f} s in all")
        return outcome
    _dvc(["queue", "start", "--jobs", str(jobs)], cwd)
    states: dict[str, str] = {}
    while True:
        _, experiments = show(cwd)
        states = {r.name: r.state for r in experiments if r.name in queued}
        if all(states.get(n) in ("success", "failed") for n in queued):
            break
        time.sleep(poll)
    failed = [n for n in queued if states.get(n) != "success"]
    if failed:
        raise StudyError(f"study {study.name}: experiments {failed} failed; `dvc queue logs <name>` shows why")
    log(f"study {study.name}: {len(queued)} experiment(s) ran; {time.monotonic() - started:.0f} s in all")
    return outcome
