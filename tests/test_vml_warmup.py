"""The first parallel call of an MKL VML op in a fresh process (torch 2.13's oneMKL
2024.2, pytorch/pytorch#188792) can return a low-accuracy chunk; stages warm VML up
when torch loads (bpkd.vml_warmup), so the first call equals the second."""
import subprocess
import sys

from conftest import REPO

# A stage-like script: torch is imported inside the stage's main, after cli.run has
# installed its hooks, as every stages/*.py does. Two threads: the race needs two.
PROBE = """
from bpkd import cli
def main():
    import torch
    torch.set_num_threads(2)
    x = torch.linspace(-3.0, 0.0, 10240)
    bad = 0
    for op, arg in (("exp", x), ("log", x.abs() + 0.1), ("tanh", x)):
        f = getattr(torch, op)
        bad += int((f(arg) != f(arg)).sum())
    print(bad)
cli.run(main)
"""


def test_first_parallel_vml_call_of_a_stage_process_equals_the_second(tmp_path):
    # Without the warm-up, 3 of 30 such processes differed on exp alone (5,108 of
    # 10,240 values) and about one in three on exp, log or tanh; 24 processes would
    # all pass by chance with probability < 1e-4.
    counts = []
    for _ in range(24):
        out = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, capture_output=True, text=True,
                             check=True, env={"PATH": "/usr/bin:/bin", "ATEN_CPU_CAPABILITY": "avx2",
                                              "PYTHONPATH": str(REPO / "src")})
        counts.append(int(out.stdout.split()[-1]))
    assert counts == [0] * 24


def test_warm_up_runs_every_listed_op_at_both_precisions():
    from bpkd.vml_warmup import VML_OPS, warm_up_vml

    import torch

    assert all(callable(getattr(torch, name)) for name in VML_OPS)
    assert {"exp", "log", "tanh", "sqrt"} <= set(VML_OPS)
    warm_up_vml()  # raises if an op rejects a float/double tensor
