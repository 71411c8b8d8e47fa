"""The cost table (python -m bpkd.bench.cost, issue #35) on CPU at the tiny geometry: a row
per pair x model x precision, positive time and memory, GPU-hours and totals by the
formula its docstring states, and a clear error naming the flag on a bad value. One run
of the bench is shared by the tests (timings are not asserted: they are reported)."""
import json
import subprocess
import sys

import pytest
import yaml

from conftest import REPO, tool_env

from bpkd.bench.cost import MODELS, PAPER_GPUS, TRAINED
from bpkd.training.amp import precision_on_this_host


def bench(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    # One thread: a bench whose two OpenMP threads share a core with another job waits
    # seconds per step (docs/performance.md); the numbers are not what is tested here.
    env = dict(tool_env(), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "bpkd.bench.cost", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tiny():
    # One step a row, no warm-up: the rows, formula and totals are tested, not the timings.
    proc = bench("--device", "cpu", "--geometry", "tiny", "--repeats", "1", "--warmup", "0")
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.strip().splitlines()
    return dict(json=json.loads(lines[-1]), text="\n".join(lines[:-1]), stderr=proc.stderr)


def expected_precisions() -> list[str]:
    # fp32, and bf16 where this CPU computes it natively (the pipeline's own rule).
    return ["fp32"] + (["bf16"] if precision_on_this_host("bf16", False, "k")[0] == "bf16" else [])


def test_every_pair_and_model_has_a_row_per_precision(tiny):
    out = tiny["json"]
    assert out["geometry"] == "tiny" and out["device"].startswith("cpu")
    pairs = yaml.safe_load((REPO / "params.yaml").read_text())["pairs"]
    keys = [(r["pair"], r["model"], r["precision"]) for r in out["rows"]]
    assert keys == [(p, m, x) for p in pairs for m in MODELS for x in expected_precisions()]
    for row in out["rows"]:
        assert set(row) == {"pair", "model", "precision", "step_ms", "peak_mem_gib", "gpu_hours_80k"}
    # The markdown table shows every row too, the teacher marked as left out of the totals.
    table = [line for line in tiny["text"].splitlines() if line.startswith("| ") and "|--" not in line]
    for pair in pairs:
        for model in MODELS:
            assert any(line.startswith(f"| {pair} ") and f"| {model}" in line for line in table), (pair, model)
    assert "teacher (downloaded, not in the totals)" in tiny["text"]
    if expected_precisions() == ["fp32"]:
        assert "note: no AMP on this CPU" in tiny["text"]


def test_time_and_memory_are_positive(tiny):
    for row in tiny["json"]["rows"]:
        assert row["step_ms"] > 0 and row["peak_mem_gib"] > 0, row
    # A distiller holds the teacher and the student: more memory than the student alone.
    rows = {(r["pair"], r["model"], r["precision"]): r for r in tiny["json"]["rows"]}
    for (pair, model, precision), row in rows.items():
        if model not in ("teacher", "baseline"):
            assert row["peak_mem_gib"] > rows[pair, "baseline", precision]["peak_mem_gib"], row


def test_gpu_hours_follow_the_documented_formula(tiny):
    # gpu_hours_80k = step_ms * 80000 / 3.6e6 (bench.cost's docstring), from the printed step_ms.
    for row in tiny["json"]["rows"]:
        assert row["gpu_hours_80k"] == pytest.approx(row["step_ms"] * 80000 / 3.6e6, abs=1e-4), row


def test_totals_sum_the_trained_rows(tiny):
    out = tiny["json"]
    pairs = sorted({r["pair"] for r in out["rows"]})
    assert set(out["totals"]) == set(expected_precisions())
    for precision, total in out["totals"].items():
        hours = [r["gpu_hours_80k"] for r in out["rows"] if r["precision"] == precision and r["model"] in TRAINED]
        assert total["runs"] == len(hours) == 6 * len(pairs)  # baseline + 5 methods per pair; no teacher
        assert total["gpu_hours_1gpu"] == pytest.approx(sum(hours), abs=1e-3)
        assert total["wall_hours_4gpu"] == total["gpu_hours_1gpu"]  # 4 GPUs each run the one-GPU step
        assert total["gpu_hours_4gpu"] == pytest.approx(PAPER_GPUS * sum(hours), abs=1e-3)


@pytest.mark.parametrize("flag, value", [("--geometry", "cityscape"), ("--pairs", "hrnet_w48_w18")])
def test_a_bad_value_fails_naming_the_flag(flag, value):
    proc = bench("--device", "cpu", flag, value, timeout=60)
    assert proc.returncode == 2
    assert f"argument {flag}: invalid choice: '{value}'" in proc.stderr, proc.stderr


def test_cuda_without_a_gpu_fails_naming_the_flag():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this host has a GPU")
    proc = bench("--device", "cuda", "--geometry", "tiny", timeout=120)
    assert proc.returncode == 2
    assert "--device cuda: torch sees no CUDA device" in proc.stderr, proc.stderr
