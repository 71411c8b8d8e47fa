"""A training stage killed with SIGKILL resumes from its last checkpoint under
`dvc repro`, and ends where an uninterrupted run ends."""
import os
import re
import signal
import subprocess
import time

import torch
import yaml

from bpkd.weights import load_checkpoint

from conftest import copy_repo, run, tool_env

PAIR = "hrnet_w48_w18s"
STAGE = f"baseline@synthetic-{PAIR}-0"
ITERS, CKPT_EVERY = 24, 4


def _longer_smoke(repo):
    """Smoke profile with enough iterations that a kill lands mid-run."""
    path = repo / "params.yaml"
    tree = yaml.safe_load(path.read_text())
    tree["profiles"]["smoke"]["student"].update(iters=ITERS, val_interval=ITERS)
    tree["profiles"]["smoke"]["train"].update(checkpoint_interval=CKPT_EVERY, log_interval=1)
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    run(["git", "commit", "-qam", "longer smoke"], repo)
    run(["dvc", "repro", "prepare@synthetic"], repo)


def _kill_after_first_checkpoint(repo) -> int:
    """Start the stage, SIGKILL it once a checkpoint exists; return that checkpoint's iteration."""
    work = repo / f"data/work/synthetic/{PAIR}/seed0/baseline"
    proc = subprocess.Popen(["dvc", "repro", STAGE], cwd=repo, env=tool_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not (work / "last_checkpoint").is_file():
        assert proc.poll() is None, "the stage ended before writing a checkpoint"
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    last = (work / "last_checkpoint").read_text().strip()
    return int(re.search(r"iter_(\d+)\.pth$", last).group(1))


def test_killed_training_resumes_from_its_checkpoint_and_matches_an_uninterrupted_run(tmp_path):
    killed = copy_repo(tmp_path / "killed")
    _longer_smoke(killed)
    done_at = _kill_after_first_checkpoint(killed)
    assert CKPT_EVERY <= done_at < ITERS
    out = killed / f"data/models/synthetic/{PAIR}/seed0/baseline.pth"
    assert not out.exists()  # nothing exported by the killed run

    t0 = time.monotonic()
    resumed = run(["dvc", "repro", STAGE], killed)
    print(f"killed after iteration {done_at} of {ITERS}; the resumed stage took {time.monotonic() - t0:.1f} s")
    log = resumed.stdout + resumed.stderr
    assert f"Advance dataloader {done_at} steps" in log, log[-3000:]
    assert not (killed / f"data/work/synthetic/{PAIR}/seed0/baseline").exists()  # cleaned once exported
    # The step log continues rather than restarting: one row per iteration, no duplicates.
    tsv = killed / f"metrics/synthetic/{PAIR}/train/seed0/baseline/plots/metrics/decode.loss_ce.tsv"
    header, *rows = tsv.read_text().splitlines()
    col = header.split("\t").index("step")
    steps = [int(row.split("\t")[col]) for row in rows]
    assert steps == list(range(1, ITERS + 1)), steps

    straight = copy_repo(tmp_path / "straight")
    _longer_smoke(straight)
    t0 = time.monotonic()
    run(["dvc", "repro", STAGE], straight)
    print(f"an uninterrupted run of the stage took {time.monotonic() - t0:.1f} s")
    a = load_checkpoint(out)["state_dict"]
    b = load_checkpoint(straight / f"data/models/synthetic/{PAIR}/seed0/baseline.pth")["state_dict"]
    assert a.keys() == b.keys()
    # The CPU path is deterministic (fixed seed, no dropout in this head, data order and
    # augmentation draws replayed when mmengine advances the loader): identical weights.
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_a_work_dir_of_another_run_is_wiped_not_resumed(tmp_path):
    from mmengine.config import Config

    from bpkd.training.resume import prepare_work_dir

    cfg = Config(dict(work_dir=str(tmp_path / "work")))
    assert prepare_work_dir(cfg, "run-a") is False  # nothing to resume yet
    (tmp_path / "work" / "iter_4.pth").write_bytes(b"x")
    (tmp_path / "work" / "last_checkpoint").write_text(str(tmp_path / "work" / "iter_4.pth"))
    assert prepare_work_dir(cfg, "run-a") is True and cfg.resume is True
    assert prepare_work_dir(cfg, "run-b") is False and cfg.resume is False  # params changed
    assert not (tmp_path / "work" / "iter_4.pth").exists()
    # killed between mmengine's removal of the old checkpoint and its save of the new one:
    # last_checkpoint names a file that is gone; start over instead of failing to load it
    (tmp_path / "work" / "last_checkpoint").write_text(str(tmp_path / "work" / "iter_2.pth"))
    (tmp_path / "work" / "iter_4.pth").write_bytes(b"partial")
    assert prepare_work_dir(cfg, "run-b") is False and cfg.resume is False
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["run_fingerprint.txt"]
