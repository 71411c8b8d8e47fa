"""The GPU machine's one-call check (python -m bpkd.devtools.cuda_check) and its wheels
(python -m bpkd.devtools.gpu_wheels), issue #35, as far as a CPU host can run them: the
check refuses cleanly without CUDA and plans its phases in a scratch copy; the wheel
list is what the device lacks, and the size check names an overflow. What needs the
GPU is in docs/gpu.md."""
import subprocess
import sys

import pytest
import torch

from conftest import REPO, tool_env

from bpkd.devtools import gpu_wheels


def cuda_check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bpkd.devtools.cuda_check", *args], cwd=REPO, env=tool_env(),
                          capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has a GPU")
def test_without_cuda_the_check_refuses_and_says_why(tmp_path):
    proc = cuda_check("--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "cuda_check: refused: no CUDA device" in proc.stderr and "docs/gpu.md" in proc.stderr, proc.stderr
    # The refusal is in the log too, which is what comes back from the device's $OUT.
    assert "refused: no CUDA device" in (tmp_path / "out" / "cuda_check.log").read_text()
    assert "scratch copy" not in proc.stdout  # nothing was started


def test_the_dry_run_plans_every_phase_without_a_gpu(tmp_path):
    proc = cuda_check("--out", str(tmp_path), "--dry-run")
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = proc.stdout
    assert "dvc repro (every stage of smoke)" in out
    # The AMP phases rerun the training stages at the first seed: teacher, baseline, each method.
    amp_line = next(line for line in out.splitlines() if line.startswith("stages bf16/fp16:"))
    for stage in ("teacher@synthetic-hrnet_w48_w18s", "baseline@synthetic-hrnet_w48_w18s-0",
                  *(f"distill@synthetic-hrnet_w48_w18s-{m}-0" for m in ("skds", "ifvd", "cirkd", "cwd", "bpkd"))):
        assert stage in amp_line.split(), stage
    # The paper's four pairs, params.yaml's first (a run cut by the deadline still has it).
    assert ("bpkd.bench.cost --device cuda --geometry cityscapes --pairs hrnet_w48_w18s pspnet_r101_r18 "
            "deeplabv3p_r101_mv2 isanet_r101_r18") in out


def test_the_wheel_list_is_what_the_device_lacks():
    wanted = gpu_wheels.needed()
    for name in ("mmengine", "mmcv-lite", "onedl-mmsegmentation", "dvc", "dvclive", "captum"):
        assert name in wanted, name
    # Never the device's own torch (its CUDA build), nor anything else its image holds.
    assert "torch" not in wanted and not set(wanted) & gpu_wheels.DEVICE_HAS
    assert not any(name.startswith("nvidia-") for name in wanted)
    # Versions are this venv's, i.e. constraints.txt's pins.
    pins = dict(line.split("==") for line in (REPO / "constraints.txt").read_text().split() if "==" in line)
    pins = {gpu_wheels.canonicalize_name(k): v for k, v in pins.items()}
    assert all(wanted[name] == pins[name] for name in wanted if name in pins)
    assert gpu_wheels.is_pure("mmengine") and not gpu_wheels.is_pure("pydantic-core")


def test_the_size_check_names_the_overflow(tmp_path):
    small, big = tmp_path / "a-1.0-py3-none-any.whl", tmp_path / "b-1.0-py3-none-any.whl"
    with open(small, "wb") as f:
        f.truncate(10 * 2**20)
    with open(big, "wb") as f:
        f.truncate(50 * 2**20)
    assert gpu_wheels.check_fits([small, big], tree=2 * 2**20) == 60 * 2**20
    with pytest.raises(gpu_wheels.WheelsError) as err:
        gpu_wheels.check_fits([small, big], tree=6 * 2**20)
    message = str(err.value)
    assert "66.0 MiB, 2.0 MiB over the device's 64 MiB transfer limit" in message, message
    assert message.index(big.name) < message.index(small.name)  # largest first
