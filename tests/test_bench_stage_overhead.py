"""The stage-overhead benchmark times each part in a fresh process and ends with its JSON
line (timings are not asserted: performance is reported by the script, not tested)."""
import json
import subprocess
import sys

from conftest import REPO, tool_env

PARTS = ["interpreter", "import", "build hrnet_w48", "save hrnet_w48", "load hrnet_w48",
         "build hrnet_w18s", "save hrnet_w18s", "load hrnet_w18s"]


def test_stage_overhead_prints_every_part_and_json():
    proc = subprocess.run([sys.executable, "-m", "bpkd.bench.stage_overhead", "--repeats", "1"],
                          cwd=REPO, env=tool_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    assert list(result) == PARTS
    assert all(isinstance(s, float) and s > 0 for s in result.values())
    header = next(i for i, line in enumerate(lines) if line.startswith("part "))
    assert [line.split("  ")[0] for line in lines[header + 1:-1]] == PARTS


def test_stage_overhead_rejects_zero_repeats():
    proc = subprocess.run([sys.executable, "-m", "bpkd.bench.stage_overhead", "--repeats", "0"],
                          cwd=REPO, env=tool_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--repeats must be at least 1" in proc.stderr
