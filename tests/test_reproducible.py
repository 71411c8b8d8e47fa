"""Every distillation stage reproduces bit for bit on CPU: forcing each one to run
again gives the same exported student and the same step log (the same dvc.lock)."""
import hashlib

import yaml

from conftest import REPO, copy_repo, run

PAIR = "hrnet_w48_w18s"
METHODS = ["skds", "ifvd", "cirkd", "cwd", "bpkd"]
# Long enough to cross a mid-run validation and checkpoint (where the demo's CWD drifted),
# with a log row every iteration.
ITERS, EVERY = 8, 4


def _md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_each_distill_stage_run_twice_gives_identical_weights_and_logs(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    path = repo / "params.yaml"
    tree = yaml.safe_load(path.read_text())
    tree["profiles"]["smoke"]["student"].update(iters=ITERS, val_interval=EVERY)
    tree["profiles"]["smoke"]["train"].update(checkpoint_interval=EVERY, log_interval=1)
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    stages = [f"distill@synthetic-{PAIR}-{m}-0" for m in METHODS]
    run(["dvc", "repro", *stages], repo)
    first_lock = (repo / "dvc.lock").read_text()
    first = {m: _md5(repo / f"data/models/synthetic/{PAIR}/seed0/{m}.pth") for m in METHODS}
    for stage in stages:
        run(["dvc", "repro", "-f", "-s", stage], repo)
    second = {m: _md5(repo / f"data/models/synthetic/{PAIR}/seed0/{m}.pth") for m in METHODS}
    assert second == first
    # dvc.lock records the md5 of every output, the DVCLive step logs included
    assert (repo / "dvc.lock").read_text() == first_lock
    assert not list((repo / "data").glob("work/**/*.pth"))  # nothing left to resume from


def test_stages_pin_torchs_cpu_kernels_from_params(tmp_path):
    # The same distill stage gave different students with torch's AVX-512 and AVX2 CPU
    # kernels (the plain training path did not), so the CPU profiles pin one level.
    import subprocess
    import sys

    tree = yaml.safe_load((REPO / "params.yaml").read_text())
    assert {p: tree["profiles"][p]["train"]["cpu_capability"] for p in ("smoke", "demo", "paper")} == \
        {"smoke": "avx2", "demo": "avx2", "paper": None}
    for value, expected in (("avx2", "AVX2"), ("default", "DEFAULT")):
        tree["profiles"]["smoke"]["train"]["cpu_capability"] = value
        tree["profile"] = "smoke"
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(tree))
        probe = ("from bpkd import cli; cli.run(lambda: print(__import__('torch').backends.cpu.get_cpu_capability()))")
        out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == expected
