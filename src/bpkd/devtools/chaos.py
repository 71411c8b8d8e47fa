"""Kill-anywhere check: the DAG, SIGKILLed at seeded random moments and rerun after each
kill, ends exactly where an uninterrupted run ends.

    python -m bpkd.devtools.chaos [--kills 6] [--seed 0] [--profile smoke] [--dir DIR]

Two scratch copies of the repository (``profile`` selected): ``straight`` runs
``dvc repro`` once; ``chaos`` runs ``dvc repro`` and is SIGKILLed (the whole process
group: DVC and the stage it runs), then ``dvc repro`` again, ``--kills`` times, then
once to the end. The first two kills are aimed: the moment a training checkpoint file
appears in a work dir (mid-checkpoint) and the moment a temporary sibling of an
exported model appears (mid-export); the others land at seeded random delays after a
restart, short enough that work always remains. Passes when every planned kill hit a
running DAG, the final ``dvc.lock`` (every output's md5, step logs included) equals the
straight run's, ``dvc status`` is clean, and no temporary file, partial download or
work dir is left behind. Prints each kill (moment, stage, what was
on disk), the wall times, and a last JSON line.
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
from pathlib import Path

import yaml

from .scratch import copy_repo, run, tool_env

# What a killed stage may leave behind that a finished pipeline must not hold.
LEFTOVER_PATTERNS = (".*.tmp-*", ".*.old-*", "*.part")


def _stage_running(log: str) -> str:
    found = re.findall(r"Running stage '([^']+)'", log)
    return found[-1] if found else "(dvc, between stages)"


AIMS = {"checkpoint": "data/work/**/iter_*.pth", "export": "data/models/**/.*.pth.tmp-*"}


def _aimed(repo: Path, kind: str, before: set[Path]) -> bool:
    """A file of ``kind`` that was not there when the run started has appeared."""
    return any(p not in before for p in repo.glob(AIMS[kind]))


def _run_until(repo: Path, delay: float | None, aim: str | None, poll: float = 0.005) -> tuple[bool, str, float]:
    """Start ``dvc repro``; SIGKILL it after ``delay`` s or when ``aim`` is seen on disk.
    Returns (killed, what ran, seconds)."""
    with tempfile.TemporaryFile(mode="w+") as out:
        t0 = time.monotonic()
        proc = subprocess.Popen(["dvc", "repro"], cwd=repo, env=tool_env(), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, text=True)
        killed = False
        before = set(repo.glob(AIMS[aim])) if aim else set()
        while proc.poll() is None:
            elapsed = time.monotonic() - t0
            if (delay is not None and elapsed >= delay) or (aim and _aimed(repo, aim, before)):
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(poll)
        proc.wait()
        seconds = time.monotonic() - t0
        out.seek(0)
        log = out.read()
    if not killed and proc.returncode != 0:
        raise RuntimeError(f"dvc repro failed in {repo} ({proc.returncode}):\n{log[-4000:]}")
    return killed, _stage_running(log), seconds


def _outputs(lock: dict) -> dict[str, str]:
    """``{path: md5}`` of every file output listed in a dvc.lock."""
    outs = {}
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            outs[out["path"]] = out["md5"]
    return outs


def leftovers(repo: Path) -> list[str]:
    found = [str(p.relative_to(repo)) for pattern in LEFTOVER_PATTERNS
             for top in ("data", "metrics") for p in (repo / top).rglob(pattern)]
    work = repo / "data" / "work"
    found += [str(p.relative_to(repo)) for p in work.rglob("*") if p.is_file()] if work.exists() else []
    return sorted(found)


def check(root: Path, kills: int, seed: int, profile: str) -> dict:
    rng = random.Random(seed)
    # Both copies first: the same sources, even if the working tree changes meanwhile.
    straight = copy_repo(root / "straight", profile)
    chaos = copy_repo(root / "chaos", profile)
    t0 = time.monotonic()
    run(["dvc", "repro"], straight)
    t_straight = time.monotonic() - t0
    print(f"uninterrupted dvc repro: {t_straight:.0f} s", flush=True)

    # The two aimed kills first (the teacher writes the first checkpoint and export),
    # then random delays of 0.3-1.0 x T/(kills+1) each: together they stay within the
    # DAG's run time T, so each kill lands while work remains, spread across stages.
    plan: list[tuple[float | None, str | None]] = [(None, "checkpoint"), (None, "export")]
    plan += [(rng.uniform(0.3, 1.0) * t_straight / (kills + 1), None) for _ in range(kills - 2)]
    events = []
    t0 = time.monotonic()
    for i, (delay, aim) in enumerate(plan, 1):
        killed, stage, seconds = _run_until(chaos, delay, aim)
        what = f"when a {aim} file appeared" if aim else f"after {delay:.1f} s"
        state = leftovers(chaos)
        events.append(dict(kill=i, aimed=aim, delay=None if aim else round(delay, 1), killed=killed,
                           stage=stage, at_s=round(seconds, 1), left_on_disk=state[:6]))
        print(f"kill {i}: {'SIGKILL' if killed else 'finished before the kill'} {what}, in {stage} "
              f"({seconds:.1f} s into the run); on disk: {state[:6] or 'nothing temporary'}", flush=True)
    killed, stage, seconds = _run_until(chaos, None, None)
    t_chaos = time.monotonic() - t0
    print(f"final dvc repro: {seconds:.0f} s; chaos total {t_chaos:.0f} s", flush=True)

    lock_a = yaml.safe_load((straight / "dvc.lock").read_text())
    lock_b = yaml.safe_load((chaos / "dvc.lock").read_text())
    outs_a, outs_b = _outputs(lock_a), _outputs(lock_b)
    differing = sorted(p for p in outs_a.keys() | outs_b.keys() if outs_a.get(p) != outs_b.get(p))
    status = run(["dvc", "status"], chaos).stdout
    result = dict(
        kills=len([e for e in events if e["killed"]]), planned=len(plan), seed=seed, profile=profile,
        stages_hit=sorted({e["stage"] for e in events if e["killed"]}),
        lock_identical=lock_a == lock_b, outputs=len(outs_a), differing_outputs=differing,
        leftovers=leftovers(chaos), dvc_status_clean="up to date" in status,
        seconds=dict(straight=round(t_straight), chaos=round(t_chaos)), events=events)
    result["passed"] = (result["kills"] == len(plan) and result["lock_identical"] and not differing
                        and not result["leftovers"] and result["dvc_status_clean"])
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=6, help="kills before the last, uninterrupted rerun (>= 2)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--dir", help="where to make the two copies (default: a temporary folder, removed)")
    args = ap.parse_args(argv)
    if args.kills < 2:
        ap.error("--kills must be >= 2 (one aimed at a checkpoint, one at an export)")
    if args.dir:
        Path(args.dir).mkdir(parents=True, exist_ok=True)
        result = check(Path(args.dir), args.kills, args.seed, args.profile)
    else:
        with tempfile.TemporaryDirectory(prefix="bpkd-chaos-") as tmp:
            result = check(Path(tmp), args.kills, args.seed, args.profile)
    print(("PASSED" if result["passed"] else "FAILED") + f": {result['kills']} kills in {result['stages_hit']}; "
          f"dvc.lock identical: {result['lock_identical']}; differing outputs: {result['differing_outputs']}; "
          f"leftovers: {result['leftovers']}")
    print(json.dumps({k: v for k, v in result.items() if k != "events"}))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
