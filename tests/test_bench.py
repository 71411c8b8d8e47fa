"""The benchmark script runs and ends with its JSON line (timings are not asserted:
performance is reported by the script, not tested)."""
import json
import sys

from conftest import REPO, run


def test_bench_prints_table_and_json_ratios(tmp_path):
    proc = run([sys.executable, "-m", "bpkd.bench.distill", "--size", "32", "64", "--batch", "1",
                "--repeats", "1", "--methods", "cwd", "bpkd"], REPO)
    lines = proc.stdout.strip().splitlines()
    ratios = json.loads(lines[-1])
    assert set(ratios) == {"cwd", "bpkd"}
    for per_size in ratios.values():
        assert list(per_size) == ["32x64"] and per_size["32x64"] > 0
    table = "\n".join(lines[:-1])
    assert "student+teacher" in table and "peak memory (MiB)" in table
