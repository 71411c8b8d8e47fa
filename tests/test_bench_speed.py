"""The speed benchmark runs its steps under two settings, prints a table naming both, and
ends with its JSON line (timings are not asserted: performance is reported by the
script, not tested). The JSON line's setting is the one the smoke profile's stages run
on the host the bench reads (a hand-written cpuinfo, both ways). A step that fails in
its worker process ends the bench with that process's error."""
import json
import subprocess
import sys

import pytest
import yaml

from conftest import REPO, tool_env

SETTINGS = ["fp32 NCHW eager", "bf16 NHWC eager"]
WITH_BF16 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
WITHOUT_BF16 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n"


# Both steps on one host; the other host's run only needs to resolve its setting, so it
# times one step (each step is a fresh process per setting: seconds of start-up each).
@pytest.mark.parametrize("flags, expected, steps", [(WITH_BF16, "bf16 NHWC eager", ["student", "eval"]),
                                                    (WITHOUT_BF16, "fp32 NHWC eager", ["eval"])],
                         ids=["native-bf16", "no-bf16"])
def test_bench_speed_prints_table_and_json_ratios(tmp_path, flags, expected, steps):
    (tmp_path / "cpuinfo").write_text(flags)
    # One thread: the measurement is not the point here, and two threads on a host whose
    # other core is busy spend seconds per step waiting for each other.
    env = dict(tool_env(), OMP_NUM_THREADS="1", BPKD_CPUINFO=str(tmp_path / "cpuinfo"))
    proc = subprocess.run([sys.executable, "-m", "bpkd.bench.speed", "--profile", "smoke", "--repeats", "2",
                           "--steps", *steps, "--settings", *SETTINGS],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    assert set(result) == {"setting", "ratios"}
    # The smoke profile's amp/memory_format/compile, its bf16 resolved as on that CPU.
    assert result["setting"] == expected
    assert list(result["ratios"]) == steps  # only the measured steps
    for r in result["ratios"].values():
        assert isinstance(r, float) and r > 0
    assert lines[0].startswith("host: ") and "native bf16" in lines[0] and "torch " in lines[0]
    fell_back = [line for line in lines if line.startswith("note: profiles.smoke.train.amp = 'bf16' falls back")]
    assert len(fell_back) == (expected != "bf16 NHWC eager")
    table = "\n".join(lines[1:-1])
    for setting in dict.fromkeys([*SETTINGS, expected]):
        assert f"{setting} ms" in table and f"{setting} ratio" in table
    rows = [line.split("|")[1].strip() for line in table.splitlines()
            if line.startswith("| student") or line.startswith("| eval")]
    assert rows == steps
    assert "compile time" not in table  # no compiled setting measured


def test_bench_speed_reports_a_step_that_fails_in_its_worker_process(tmp_path):
    """A step that raises while its worker builds it (here BPKD on an invalid param) ends
    the bench with that error, not with the parent waiting on the worker's pipe."""
    tree = yaml.safe_load((REPO / "params.yaml").read_text())
    tree["loss"]["edge_norm"] = "bogus"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    (tmp_path / "cpuinfo").write_text(WITHOUT_BF16)
    env = dict(tool_env(), OMP_NUM_THREADS="1", BPKD_CPUINFO=str(tmp_path / "cpuinfo"))
    proc = subprocess.run([sys.executable, "-m", "bpkd.bench.speed", "--profile", "smoke", "--repeats", "1",
                           "--params", str(tmp_path / "params.yaml"), "--steps", "bpkd",
                           "--settings", "fp32 NCHW eager", "fp32 NHWC eager"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-4000:]
    assert "bpkd under 'fp32 NCHW eager' failed in its worker process" in proc.stderr
    assert "loss.edge_norm = 'bogus' is invalid" in proc.stderr
    assert '"ratios"' not in proc.stdout  # no JSON line for a run that did not finish
