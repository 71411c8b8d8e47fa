"""Stages run with the CPU kernels the params pin. (That every stage then reproduces bit
for bit, the same exported models and step logs, i.e. the same dvc.lock, is checked by
tests/test_chaos.py, whose second run of the whole smoke DAG must equal the first.)"""
import yaml

from conftest import REPO


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
