"""The report's tables and README block, from hand-made metrics files."""
import json

import pytest

from bpkd.report.readme_block import END, START, MarkersMissing, refresh
from bpkd.report.tables import render

PAIR = "hrnet_w48_w18s"


def _metrics(root, model, miou, macc, radius=3):
    """One evaluation of seed 0's run (the teacher's has no seed folder: it trains once)."""
    path = root / "eval" / "synthetic" / PAIR / ("" if model == "teacher" else "seed0") / f"{model}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"mIoU": miou, "mAcc": macc, "aAcc": 90.0, "mIoU_edge": miou - 20,
                                "mIoU_body": miou + 5, "mBF": 33.333, "edge_radius_px": radius}))


def test_tables_show_missing_runs_and_gains_over_baseline_and_cwd(tmp_path):
    _metrics(tmp_path, "teacher", 55.0, 60.0)
    _metrics(tmp_path, "baseline", 40.0, 50.0)
    _metrics(tmp_path, "cwd", 42.0, 51.0)
    _metrics(tmp_path, "bpkd", 43.5, 49.25)
    text = render(tmp_path, ["synthetic"], [PAIR], ["skds", "cwd", "bpkd"])
    lines = text.splitlines()
    row = next(line for line in lines if line.startswith("| BPKD(Ours)") and "43.50" in line)
    assert "49.25" in row
    gains = next(line for line in lines if line.startswith(f"| {PAIR}") and "BPKD(Ours)" in line)
    cells = [c.strip() for c in gains.strip("|").split("|")]
    assert cells == [PAIR, "BPKD(Ours)", "43.50", "+3.50", "+1.50", "-0.75"]
    boundary = [line for line in lines if line.startswith("| BPKD(Ours)")][1]
    assert [c.strip() for c in boundary.strip("|").split("|")] == ["BPKD(Ours)", "43.50", "23.50", "48.50", "33.33"]
    skds = next(line for line in lines if line.startswith(f"| {PAIR}") and "SKDS" in line)
    assert [c.strip() for c in skds.strip("|").split("|")][2:] == ["—", "—", "—", "—"]  # never run
    assert "Boundaries (evaluation edge band of radius 3 px; BF" in text


def test_boundary_caption_names_the_band_the_evaluations_drew(tmp_path):
    for model in ("teacher", "baseline", "cwd"):
        _metrics(tmp_path, model, 40.0, 50.0, radius=1)
    text = render(tmp_path, ["synthetic"], [PAIR], ["cwd"])
    assert "Boundaries (evaluation edge band of radius 1 px: 3 px at the paper's resolution; BF" in text


def test_readme_block_is_replaced_between_markers_only(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nintro\n{START}\nold table\n{END}\n\n## After\n")
    refresh(readme, "| new | table |")
    assert readme.read_text() == f"# Title\n\nintro\n{START}\n| new | table |\n{END}\n\n## After\n"
    refresh(readme, "| newer |")  # idempotent structure: refreshed again in place
    assert readme.read_text().count(START) == 1 and "| newer |" in readme.read_text()


def test_readme_without_markers_is_refused_and_left_alone(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n")
    with pytest.raises(MarkersMissing, match="README.md"):
        refresh(readme, "x")
    assert readme.read_text() == "# Title\n"


def _step_log(root, run, term, rows):
    path = root / run / "plots" / "metrics" / f"{term}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"step\t{term}\n" + "".join(f"{s}\t{v}\n" for s, v in rows))


def test_curves_merge_shared_terms_of_all_runs_into_one_long_table(tmp_path):
    from bpkd.report.curves import collect, write

    _step_log(tmp_path, "teacher", "mIoU", [(400, 40.5), (800, 50.25)])
    _step_log(tmp_path, "baseline", "mIoU", [(200, 30.0)])
    _step_log(tmp_path, "bpkd", "mIoU", [(200, 33.0)])
    _step_log(tmp_path, "bpkd", "loss_bpkd_edge", [(20, 7.0)])  # a method's own term: not overlaid
    _step_log(tmp_path, "bpkd", "lr", [(20, 0.01)])  # bookkeeping: left out
    _step_log(tmp_path, "teacher", "loss", [(20, 2.0)])  # curated, but one run only: not a comparison
    curves = collect({r: tmp_path / r for r in ["teacher", "baseline", "cwd", "bpkd"]})  # cwd has not run yet
    assert curves == {"mIoU": [(400, "teacher", "40.5"), (800, "teacher", "50.25"), (200, "baseline", "30.0"),
                               (200, "bpkd", "33.0")]}
    write(curves, tmp_path / "out")
    assert (tmp_path / "out" / "mIoU.tsv").read_text().splitlines() == [
        "step\trun\tmIoU", "400\tteacher\t40.5", "800\tteacher\t50.25", "200\tbaseline\t30.0", "200\tbpkd\t33.0"]


def test_curves_take_each_runs_last_point_from_finals(tmp_path):
    from bpkd.report.curves import collect, last_step

    _step_log(tmp_path, "teacher", "mIoU", [(400, 40.5), (800, 50.25)])  # a log from before: validated at 800
    _step_log(tmp_path, "teacher", "loss", [(20, 2.0), (800, 0.5)])
    _step_log(tmp_path, "baseline", "loss", [(20, 2.5), (400, 1.0)])  # trained, never validated
    _step_log(tmp_path, "cwd", "loss", [(20, 2.5)])  # trained, not evaluated yet: no final
    assert last_step(tmp_path / "teacher") == 800 and last_step(tmp_path / "baseline") == 400
    assert last_step(tmp_path / "skds") is None  # not trained yet
    runs = {r: tmp_path / r for r in ["teacher", "baseline", "cwd"]}
    finals = {"mIoU": {"teacher": (800, "50.3"), "baseline": (400, "31.0")}}
    assert collect(runs, terms=("mIoU",), finals=finals) == {
        "mIoU": [(400, "teacher", "40.5"), (800, "teacher", "50.3"), (400, "baseline", "31.0")]}
    # Without them, the baseline has no val point and the teacher's one line is no comparison.
    assert collect(runs, terms=("mIoU",)) == {}


def test_curves_refuse_a_step_log_without_its_columns(tmp_path):
    from bpkd.report.curves import collect

    path = tmp_path / "baseline" / "plots" / "metrics" / "mIoU.tsv"
    path.parent.mkdir(parents=True)
    path.write_text("iteration\tmiou\n1\t2\n")
    with pytest.raises(ValueError, match="mIoU.tsv: expected a DVCLive step log"):
        collect({"baseline": tmp_path / "baseline"})


def test_method_terms_gather_each_methods_own_loss_terms_only(tmp_path):
    from bpkd.report.curves import method_terms, write_terms

    _step_log(tmp_path, "bpkd", "loss_bpkd_edge", [(20, 7.0), (40, 5.5)])
    _step_log(tmp_path, "bpkd", "loss_bpkd_body", [(20, 1.0)])
    _step_log(tmp_path, "bpkd", "decode.loss_ce", [(20, 2.0)])  # the task loss is overlaid, not a method term
    _step_log(tmp_path, "cwd", "loss_cwd", [(20, 3.0)])
    _step_log(tmp_path, "cwd", "time", [(20, 0.1)])
    rows = method_terms({m: tmp_path / m for m in ["skds", "cwd", "bpkd"]})  # skds has not trained yet
    assert rows == [(20, "cwd", "loss_cwd", "3.0"), (20, "bpkd", "loss_bpkd_body", "1.0"),
                    (20, "bpkd", "loss_bpkd_edge", "7.0"), (40, "bpkd", "loss_bpkd_edge", "5.5")]
    write_terms(rows, tmp_path / "terms.tsv")
    assert (tmp_path / "terms.tsv").read_text().splitlines()[:2] == ["step\tmethod\tterm\tvalue",
                                                                      "20\tcwd\tloss_cwd\t3.0"]


def test_method_balance_gathers_each_terms_gradient_ratio_and_leaves_the_ce_norm_out(tmp_path):
    from bpkd.report.curves import method_balance

    _step_log(tmp_path, "bpkd", "balance.bpkd_edge", [(40, 2.5), (80, 3.0)])
    _step_log(tmp_path, "bpkd", "balance.ce_grad_norm", [(40, 6.0)])  # the denominator, not a term
    _step_log(tmp_path, "bpkd", "loss_bpkd_edge", [(40, 7.0)])  # a term's value: terms.tsv's
    _step_log(tmp_path, "cwd", "balance.cwd", [(40, 1.5)])
    assert method_balance({m: tmp_path / m for m in ["cwd", "bpkd", "skds"]}) == [
        (40, "cwd", "cwd", "1.5"), (40, "bpkd", "bpkd_edge", "2.5"), (80, "bpkd", "bpkd_edge", "3.0")]


def _per_class(root, model, ious, classes=("road", "sky")):
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{model}.json").write_text(json.dumps([{"class": c, "IoU": v, "Acc": 50.0}
                                                    for c, v in zip(classes, ious)]))


def test_per_class_merges_models_side_by_side_and_refuses_other_classes(tmp_path):
    from bpkd.report.per_class import collect

    _per_class(tmp_path, "teacher", [90.0, 80.5])
    _per_class(tmp_path, "bpkd", [70.0, 60.0])
    assert collect({m: tmp_path / f"{m}.json" for m in ["teacher", "baseline", "bpkd"]}) == [
        ("road", "teacher", 90.0), ("road", "bpkd", 70.0), ("sky", "teacher", 80.5), ("sky", "bpkd", 60.0)]
    _per_class(tmp_path, "cwd", [1.0, 2.0], classes=("sky", "road"))
    with pytest.raises(ValueError, match="cwd.json: classes"):
        collect({m: tmp_path / f"{m}.json" for m in ["teacher", "cwd"]})


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_static_figures_render_offline_from_the_pages_templates(tmp_path):
    from pathlib import Path

    from PIL import Image

    from bpkd.report.curves import write
    from bpkd.report.figures import render
    from bpkd.report.per_class import write as write_per_class

    charts = tmp_path / "charts"
    write({"mIoU": [(200, "baseline", "30.0"), (400, "baseline", "41.0"), (200, "bpkd", "33.0"),
                    (400, "bpkd", "45.5")]}, charts)
    write_per_class([("road", "baseline", 80.0), ("road", "bpkd", 85.0), ("sky", "baseline", 60.0),
                     ("sky", "bpkd", 70.0)], charts / "per_class.tsv")
    grid = tmp_path / "grid.png"
    Image.new("RGB", (2000, 300), (0, 128, 255)).save(grid)
    names = render(charts_dir=charts, qualitative=grid, templates_dir=Path(__file__).parents[1] / ".dvc/plots",
                   out_dir=tmp_path / "fig", dataset="synthetic", pair=PAIR)
    assert names == ["val_miou.png", "per_class_iou.png", "qualitative.png"]
    for name in names:
        data = (tmp_path / "fig" / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) < 60_000, (name, len(data))
    chart = Image.open(tmp_path / "fig" / "val_miou.png")
    assert chart.width >= 300 and chart.height >= 300 and len(chart.convert("RGB").getcolors(4096)) > 8  # not blank
    assert Image.open(tmp_path / "fig" / "qualitative.png").size == (960, 144)
    assert render(charts_dir=tmp_path / "none", qualitative=tmp_path / "none.png",
                  templates_dir=tmp_path, out_dir=tmp_path / "fig2", dataset="synthetic", pair=PAIR) == []


def test_offline_page_template_inlines_vega_and_keeps_dvc_placeholders(tmp_path):
    from bpkd.report.offline_page import main

    main([str(tmp_path / "offline.html")])
    html = (tmp_path / "offline.html").read_text()
    assert html.count("{plot_divs}") == 1 and "{scripts}" not in html  # no CDN script tags from DVC
    assert "window.vegaEmbed=" in html and "http://" not in html.split("<script>")[0]
    assert "cdn.jsdelivr" not in html and len(html) > 500_000


def _seeded(root, model, seed, miou):
    path = root / "eval" / "synthetic" / PAIR / f"seed{seed}" / f"{model}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"mIoU": miou, "mAcc": 50.0, "aAcc": 90.0, "mIoU_edge": 20.0, "mIoU_body": 50.0,
                                "mBF": 30.0, "edge_radius_px": 1}))


def test_a_released_checkpoint_fills_its_row_from_its_unseeded_evaluation(tmp_path):
    path = tmp_path / "eval" / "synthetic" / PAIR / "cwd.json"  # released@: one given checkpoint, no seed
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"mIoU": 71.5, "mAcc": 80.0}))
    _metrics(tmp_path, "cwd", 10.0, 10.0)  # a stale trained run of the same name is not read
    rows = render(tmp_path, ["synthetic"], [PAIR], ["cwd"], seeds=[0], released=["cwd"]).splitlines()
    assert next(line for line in rows if line.startswith("| CWD")).split("|")[4].strip() == "71.50"


def test_several_seeds_give_means_and_a_spread_table_with_paired_differences(tmp_path):
    _metrics(tmp_path, "teacher", 55.0, 60.0, radius=1)  # the teacher is given: no seed folder
    for model, mious in {"baseline": [40.0, 41.0, 42.0], "cwd": [42.0, 44.0, 43.0], "bpkd": [43.0, 43.5, 46.0]}.items():
        for seed, miou in zip([0, 1, 2], mious):
            _seeded(tmp_path, model, seed, miou)
    text = render(tmp_path, ["synthetic"], [PAIR], ["cwd", "bpkd"], seeds=[0, 1, 2])
    lines = text.splitlines()
    bpkd = next(line for line in lines if line.startswith("| BPKD(Ours)"))
    assert bpkd.split("|")[4].strip() == "44.17 ± 1.61 (n=3)"
    assert "Spread over seeds (mIoU, %)" in text and "paired t-test" in text
    spread = {c[1]: c for c in ([x.strip() for x in line.strip("|").split("|")] for line in lines
                                if line.startswith(f"| {PAIR}") and "±" in line)}
    # By hand: BPKD - S = 3, 2.5, 4 -> mean 3.167, SE 0.441, t 7.18 (df 2) -> p 0.019, marked;
    # BPKD - CWD = 1, -0.5, 3 -> mean 1.167, SE 1.014, t 1.15 -> p 0.37, within 2 SE;
    # S - CWD = -2, -3, -1 -> mean -2, SE 0.577, t 3.46 -> p 0.074, beyond 2 SE.
    assert spread["BPKD(Ours)"][2:] == ["44.17 ± 1.61 (3)", "+3.17 ± 0.44 (p 0.02) *", "+1.17 ± 1.01 (p 0.37)",
                                        "—"]  # no cost record
    assert spread["S: HRNetV2P-W18S"][2:] == ["41.00 ± 1.00 (3)", "—", "-2.00 ± 0.58 (p 0.07) *", "—"]
    assert spread["CWD"][3:] == ["+2.00 ± 0.58 (p 0.07) *", "—", "—"]
    # The generated sentence names what exceeds the noise and what does not, from the same numbers.
    assert ("Beyond the seed noise (*, |Δ| > 2 SE): CWD vs S +2.00 ± 0.58 (n=3); BPKD(Ours) vs S +3.17 ± 0.44 (n=3). "
            "Within it: BPKD(Ours) vs CWD +1.17 ± 1.01 (n=3).") in text
    assert "T: HRNetV2P-W48" not in spread


def test_the_baseline_seeds_spread_stands_beside_each_gain(tmp_path):
    """The default: the baseline at three seeds, the methods at one. Δ vs S is taken
    against the baseline's mean (what the gains table's noise column is the spread of);
    the spread table keeps the paired difference, here over the one shared seed."""
    _metrics(tmp_path, "teacher", 55.0, 60.0, radius=1)
    for seed, miou in zip([0, 1, 2], [20.0, 22.0, 24.0]):
        _seeded(tmp_path, "baseline", seed, miou)
    _seeded(tmp_path, "bpkd", 0, 25.0)
    _seeded(tmp_path, "bpkd", 1, 99.0)  # a stale run of a seed the methods no longer train: not read
    text = render(tmp_path, ["synthetic"], [PAIR], ["cwd", "bpkd"], seeds=[0], baseline_seeds=[0, 1, 2])
    lines = text.splitlines()
    assert "The baseline student ran once per seed (0, 1, 2), each distilled student once per seed (0)" in text
    # The generated reading lines: seeds per row, the one threshold, where BPKD is explained.
    assert "- Seeds per row (synthetic): S: HRNetV2P-W18S: n = 3; BPKD(Ours): n = 1." in text
    # std 2.00 over 3 seeds: 2 x sqrt(2 / chi2(0.975, 2) = 7.378) = 1.04, 2 x sqrt(2 / chi2(0.025, 2) = 0.0506) = 12.57
    assert "- Noise floor (synthetic): the baseline's seed std is 2.00 mIoU over 3 seeds (95 % interval 1.04–12.57)." in text
    assert "exceeds 2 SE over the seeds both rows ran" in text and "(docs/bpkd.md)" in text
    results = {}
    for c in map(_cells, lines):  # the seed layout's rows come first (the boundary table's after)
        if len(c) == 5:
            results.setdefault(c[0], c)
    assert results["S: HRNetV2P-W18S"][3] == "22.00 ± 2.00 (n=3)"
    assert results["BPKD(Ours)"][3] == "25.00"
    header = next(line for line in lines if "Δ mIoU vs S" in line)
    assert _cells(header) == ["Pair", "Methods", "mIoU(%)", "Δ mIoU vs S", "S seed std", "Δ mIoU vs CWD",
                              "Δ mAcc vs S"]
    gains = next(c for c in map(_cells, lines) if c[:2] == [PAIR, "BPKD(Ours)"] and len(c) == 7)
    assert gains[2:5] == ["25.00", "+3.00", "2.00 (n=3)"]  # 25 - mean(20, 22, 24), beside the std 2.00
    assert "noise floor" in text
    spread = {c[1]: c for c in map(_cells, lines) if c[0] == PAIR and len(c) == 6 and "±" in c[2]}
    assert spread["S: HRNetV2P-W18S"][2:4] == ["22.00 ± 2.00 (3)", "—"]
    assert spread["BPKD(Ours)"][2:4] == ["25.00 ± — (1)", "+5.00 (seed 0 only)"]  # paired: 25 - 20 on seed 0
    assert "The distilled students ran one seed (0): a Δ over one shared seed is the plain difference" in text


def _cost(root, model, seed, wall_s, host="AVX2 only", first_iter=0):
    path = root / "cost" / "synthetic" / PAIR / f"seed{seed}" / f"{model}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"wall_s": wall_s, "steps": 400 - first_iter, "first_iter": first_iter,
                                "host_class": host}))


def test_the_same_compute_baseline_is_a_row_and_each_row_has_its_train_time_against_the_baseline(tmp_path):
    _metrics(tmp_path, "teacher", 55.0, 60.0, radius=1)
    runs = {"baseline": ([40.0, 41.0, 42.0], [100.0, 110.0, 90.0]),
            "baseline_same_compute": ([41.0, 43.0, 42.0], [250.0, 260.0, 240.0]),
            "cwd": ([42.0, 44.0, 43.0], [300.0, 310.0, 290.0])}
    for model, (mious, walls) in runs.items():
        for seed, (miou, wall) in enumerate(zip(mious, walls)):
            _seeded(tmp_path, model, seed, miou)
            _cost(tmp_path, model, seed, wall)
    text = render(tmp_path, ["synthetic"], [PAIR], ["cwd"], seeds=[0, 1, 2], same_compute_seeds=[0, 1, 2])
    lines = text.splitlines()
    results = [c[0] for c in map(_cells, lines) if len(c) == 5 and not c[0].startswith("-")][:4]  # the paper's layout
    assert results == ["Methods", "T: HRNetV2P-W48", "S: HRNetV2P-W18S", "S: HRNetV2P-W18S, same compute"]
    spread = {c[1]: c[2:] for c in map(_cells, lines) if c[0] == PAIR and len(c) == 6}
    # By hand: same compute - S = 1, 2, 0 -> +1.00 ± 0.58 (p 0.23); - CWD = -1, -1, -1 (SE 0: marked);
    # its wall time 250 / 100 = 2.50x.
    assert spread["S: HRNetV2P-W18S, same compute"] == ["42.00 ± 1.00 (3)", "+1.00 ± 0.58 (p 0.23)",
                                                        "-1.00 ± 0.00 (p 0.00) *", "2.50×"]
    assert spread["CWD"][3] == "3.00×" and spread["S: HRNetV2P-W18S"][3] == "1.00×"
    assert "host: AVX2 only" in text
    # A run resumed at iteration 300 timed its last 100 steps only: out of CWD's median
    # (300 and 290 -> 2.95x), its score still in.
    _cost(tmp_path, "cwd", 1, 80.0, first_iter=300)
    text = render(tmp_path, ["synthetic"], [PAIR], ["cwd"], seeds=[0, 1, 2], same_compute_seeds=[0, 1, 2])
    spread = {c[1]: c[2:] for c in map(_cells, text.splitlines()) if c[0] == PAIR and len(c) == 6}
    assert spread["CWD"][:1] == ["43.00 ± 1.00 (3)"] and spread["CWD"][3] == "2.95×"
    # A run that shared the host (three times as long) does not move the median: 2.95x.
    _cost(tmp_path, "cwd", 0, 900.0)
    _cost(tmp_path, "cwd", 1, 310.0)
    text = render(tmp_path, ["synthetic"], [PAIR], ["cwd"], seeds=[0, 1, 2], same_compute_seeds=[0, 1, 2])
    spread = {c[1]: c[2:] for c in map(_cells, text.splitlines()) if c[0] == PAIR and len(c) == 6}
    assert spread["CWD"][3] == "3.10×"
    # Runs timed on two host classes are not divided by each other.
    _cost(tmp_path, "cwd", 2, 290.0, host="AVX-512, no native bf16")
    text = render(tmp_path, ["synthetic"], [PAIR], ["cwd"], seeds=[0, 1, 2], same_compute_seeds=[0, 1, 2])
    spread = {c[1]: c[2:] for c in map(_cells, text.splitlines()) if c[0] == PAIR and len(c) == 6}
    assert spread["CWD"][3] == "—" and spread["S: HRNetV2P-W18S, same compute"][3] == "2.50×"


def test_one_seed_renders_no_spread_table(tmp_path):
    _seeded(tmp_path, "baseline", 0, 40.0)
    text = render(tmp_path, ["synthetic"], [PAIR], ["cwd"], seeds=[0])
    assert "Spread over seeds" not in text
    assert next(line for line in text.splitlines() if line.startswith("| S: ")).split("|")[4].strip() == "40.00"


def _released(root, dataset, pair, model, miou, macc):
    """One evaluation as `released@` writes it: a given checkpoint, no seed folder."""
    path = root / "eval" / dataset / pair / f"{model}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"mIoU": miou, "mAcc": macc, "aAcc": 95.0, "mIoU_edge": 50.0, "mIoU_body": 80.0,
                                "mBF": 60.0, "edge_radius_px": 3}))


def _cells(line):
    return [c.strip() for c in line.strip("|").split("|")]


def test_a_real_dataset_shows_measured_beside_reported_with_the_difference(tmp_path):
    # The seed's Cityscapes HRNetV2P-W48 / W18S rows: T 80.65 / 87.39, S 75.31 / 83.71,
    # SKDS 77.27 / 84.77, CWD 77.87 / 84.98, BPKD 78.58 / 85.78 (mIoU / mAcc).
    _released(tmp_path, "cityscapes", PAIR, "teacher", 80.40, 87.50)  # -0.25, +0.11
    _released(tmp_path, "cityscapes", PAIR, "baseline", 74.50, 83.70)  # -0.81 (marked), -0.01
    _released(tmp_path, "cityscapes", PAIR, "cwd", 78.37, 85.10)  # +0.50: not above 0.5, not marked; +0.12
    _released(tmp_path, "cityscapes", PAIR, "bpkd", 77.90, 85.00)  # -0.68 (marked), -0.78
    text = render(tmp_path, ["cityscapes"], [PAIR], ["skds", "cwd", "bpkd"],
                  released=["baseline", "skds", "cwd", "bpkd"])
    assert "Δ = measured − reported" in text and "†: |Δ mIoU| > 0.5" in text
    header = next(line for line in text.splitlines() if "reported mIoU(%)" in line)
    assert _cells(header) == ["Pair", "Methods", "mIoU(%)", "reported mIoU(%)", "Δ mIoU", "mAcc(%)",
                              "reported mAcc(%)", "Δ mAcc"]
    rows = {c[1]: c[2:] for c in map(_cells, text.splitlines()) if c[0] == PAIR and len(c) == 8}
    assert rows == {
        "T: HRNetV2P-W48": ["80.40", "80.65", "-0.25", "87.50", "87.39", "+0.11"],
        "S: HRNetV2P-W18S": ["74.50", "75.31", "-0.81 †", "83.70", "83.71", "-0.01"],
        "SKDS": ["—", "77.27", "—", "—", "84.77", "—"],  # not run: the paper's target stays in view
        "CWD": ["78.37", "77.87", "+0.50", "85.10", "84.98", "+0.12"],
        "BPKD(Ours)": ["77.90", "78.58", "-0.68 †", "85.00", "85.78", "-0.78"],
    }
    synthetic = render(tmp_path, ["synthetic"], [PAIR], ["cwd"])  # the seed has no synthetic table
    assert "reported" not in synthetic and "†" not in synthetic


def test_every_model_released_and_no_method_trained_gives_the_papers_rows_beside_its_numbers(tmp_path):
    """`methods: []`, every model released: each row comes from its released@ evaluation;
    Cityscapes' HRNet CIRKD, which the paper released no file of, is recorded as such and
    shows `—` beside its reported number. Nothing was trained: no seed caption, no spread."""
    _released(tmp_path, "cityscapes", PAIR, "teacher", 80.40, 87.50)
    _released(tmp_path, "cityscapes", PAIR, "baseline", 74.50, 83.70)
    for model, miou in {"skds": 77.00, "ifvd": 76.00, "cwd": 78.37, "bpkd": 77.90}.items():
        _released(tmp_path, "cityscapes", PAIR, model, miou, 85.0)
    (tmp_path / "eval" / "cityscapes" / PAIR / "cirkd.json").write_text(json.dumps({"released": False}))
    released = ["baseline", "skds", "ifvd", "cirkd", "cwd", "bpkd"]
    text = render(tmp_path, ["cityscapes"], [PAIR], [], seeds=[0, 1, 2], released=released, baseline_seeds=[])
    lines = list(map(_cells, text.splitlines()))
    five_columns = [c[0] for c in lines if len(c) == 5 and c[0] != "Methods" and not set(c[0]) <= {"-"}]
    # the paper's layout, then the boundary table: the same rows
    assert five_columns == ["T: HRNetV2P-W48", "S: HRNetV2P-W18S", "SKDS", "IFVD", "CIRKD", "CWD", "BPKD(Ours)"] * 2
    reported = {c[1]: c[2:5] for c in lines if c[0] == PAIR and len(c) == 8}
    assert reported["SKDS"] == ["77.00", "77.27", "-0.27"] and reported["IFVD"][0] == "76.00"
    assert reported["CIRKD"][0] == "—" and reported["CIRKD"][2] == "—"  # no file released; reported stays
    assert ("- Released checkpoints (cityscapes): S: HRNetV2P-W18S, SKDS, IFVD, CWD, BPKD(Ours): downloaded and "
            "evaluated by `released@…`, not trained here (`src/bpkd/weights/registry.yaml`, "
            "[weights](docs/weights.md)); none released, so `—`: CIRKD (hrnet_w48_w18s).") in text
    assert "ran once per seed" not in text and "Spread over seeds" not in text
    gains = {c[1]: c[3] for c in lines if c[0] == PAIR and len(c) in (6, 7)}
    assert gains["BPKD(Ours)"] == "+3.40"  # 77.90 - 74.50: against the released baseline


def test_with_several_seeds_the_measured_number_is_the_mean(tmp_path):
    for seed, miou in [(0, 75.0), (1, 76.0)]:
        path = tmp_path / "eval" / "cityscapes" / PAIR / f"seed{seed}" / "baseline.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"mIoU": miou, "mAcc": 83.0}))
    text = render(tmp_path, ["cityscapes"], [PAIR], [], seeds=[0, 1])
    assert "a trained student's measured number being its mean over seeds" in text
    row = next(c for c in map(_cells, text.splitlines()) if c[:2] == [PAIR, "S: HRNetV2P-W18S"] and len(c) == 8)
    assert row[2:] == ["75.50", "75.31", "+0.19", "83.00", "83.71", "-0.71"]  # (75 + 76) / 2 - 75.31
