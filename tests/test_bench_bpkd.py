"""The two benches behind docs/bpkd.md and docs/noise-and-cost.md, run small."""
import json

from bpkd.bench import bpkd_gradients, term_balance

PAIR = "hrnet_w48_w18s"


def test_term_balance_bench_times_both_paths_at_the_profiles_interval(capsys):
    assert term_balance.main(["--profile", "smoke", "--repeats", "1", "--methods", "cwd"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("smoke: pair hrnet_w48_w18s, batch 2x3x64x128") and "term_balance.interval = 1" in out[0]
    assert out[1].startswith("| method") and out[3].startswith("| cwd")
    share = json.loads(out[-1])["cwd"]
    assert share > -0.5  # the measuring step runs two more backward passes; noise cannot make it twice as fast


def test_bpkd_gradients_puts_all_of_the_edge_terms_gradient_on_band_cells(smoke_repo, capsys):
    teacher = smoke_repo / "data" / "models" / "synthetic" / PAIR / "teacher.pth"
    assert bpkd_gradients.main(["--teacher", str(teacher), "--students", "init", "--batches", "1",
                                "--params", str(smoke_repo / "params.yaml")]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["init"]
    assert abs(r["edge:band_share"] - 1.0) < 1e-9  # the edge term is masked to the band: nothing elsewhere
    assert r["edge:other_cell_vs_ce_band_cell"] == 0.0
    assert r["ce:band_cell_vs_ce_band_cell"] == 1.0 and r["ce:head_vs_ce"] == 1.0
    assert 0.0 < r["band_cell_share"] < 1.0 and 0.0 < r["ce:band_share"] < 1.0
    assert 0.0 <= r["teacher_error:band"] <= 1.0 and 0.0 <= r["teacher_error:elsewhere"] <= 1.0
    assert r["body:backbone_vs_ce"] > 0.0 and r["edge:backbone_vs_ce"] > 0.0
