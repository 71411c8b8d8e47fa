"""The speed benchmark runs its steps under two settings, prints a table naming both, and
ends with its JSON line (timings are not asserted: performance is reported by the
script, not tested)."""
import json
import subprocess
import sys

from conftest import REPO, tool_env

SETTINGS = ["fp32 NCHW eager", "bf16 NHWC eager"]


def test_bench_speed_prints_table_and_json_ratios():
    # One thread: the measurement is not the point here, and two threads on a host whose
    # other core is busy spend seconds per step waiting for each other.
    env = dict(tool_env(), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "bpkd.bench.speed", "--profile", "smoke", "--repeats", "2",
                           "--steps", "student", "eval", "--settings", *SETTINGS],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    assert set(result) == {"setting", "ratios"}
    assert result["setting"] in SETTINGS  # the smoke profile's amp/memory_format/compile
    assert list(result["ratios"]) == ["student", "eval"]  # only the measured steps
    for r in result["ratios"].values():
        assert isinstance(r, float) and r > 0
    assert lines[0].startswith("host: ") and "native bf16" in lines[0] and "torch " in lines[0]
    table = "\n".join(lines[1:-1])
    for setting in SETTINGS:
        assert f"{setting} ms" in table and f"{setting} ratio" in table
    rows = [line for line in table.splitlines() if line.startswith("| student") or line.startswith("| eval")]
    assert len(rows) == 2
    assert "compile time" not in table  # no compiled setting measured
