"""The smoke profile through a real `dvc repro` in a temporary copy of the repo."""
import json

import torch
import yaml

from bpkd.models.build import build_model, model_config
from bpkd.weights import load_into

from conftest import run

PAIR = "hrnet_w48_w18s"
MODELS = ["teacher", "baseline", "skds", "ifvd", "cirkd", "cwd", "bpkd"]


def test_every_model_is_trained_evaluated_and_reported(smoke_repo):
    for model in MODELS:
        metrics = json.loads((smoke_repo / f"metrics/eval/synthetic/{PAIR}/{model}.json").read_text())
        assert set(metrics) == {"mIoU", "mAcc", "aAcc", "mIoU_edge", "mIoU_body", "mBF"}
        assert all(0.0 <= v <= 100.0 for v in metrics.values()), (model, metrics)
        per_class = json.loads((smoke_repo / f"metrics/per_class/synthetic/{PAIR}/{model}.json").read_text())
        assert [row["class"] for row in per_class][:3] == ["road", "sidewalk", "building"]
    tables = (smoke_repo / "metrics/tables.md").read_text()
    for label in ["T: HRNetV2P-W48", "S: HRNetV2P-W18S", "SKDS", "IFVD", "CIRKD", "CWD", "BPKD(Ours)"]:
        assert f"| {label}" in tables
    baseline = json.loads((smoke_repo / f"metrics/eval/synthetic/{PAIR}/baseline.json").read_text())
    assert f"{baseline['mIoU']:.2f}" in tables


def test_distillation_logs_each_loss_term_finite(smoke_repo):
    expected = {"bpkd": ["loss_bpkd_edge", "loss_bpkd_body"], "cwd": ["loss_cwd"],
                "skds": ["loss_skds_pair", "loss_skds_d"], "ifvd": ["loss_ifvd_ifv"],
                "cirkd": ["loss_cirkd_batch", "loss_cirkd_mem_pixel"]}
    for method, terms in expected.items():
        plots = smoke_repo / f"metrics/synthetic/{PAIR}/train/{method}/plots/metrics"
        for term in terms:
            tsv = plots / f"{term}.tsv"
            assert tsv.is_file(), sorted(p.name for p in plots.iterdir())
            values = [float(line.split("\t")[-1]) for line in tsv.read_text().splitlines()[1:]]
            assert values and all(torch.isfinite(torch.tensor(values))), (method, term, values)


def test_exported_student_loads_into_a_plain_mmseg_model(smoke_repo):
    model = build_model(model_config("hrnet_w18s", 10, (64, 128)))
    meta = load_into(model, smoke_repo / f"data/models/synthetic/{PAIR}/bpkd.pth")
    assert meta["role"] == "bpkd" and meta["iters"] == 3


def test_second_repro_does_nothing_and_ablation_reruns_only_bpkd(smoke_repo):
    again = run(["dvc", "repro"], smoke_repo)
    assert "Running stage" not in again.stdout
    status = run(["dvc", "status"], smoke_repo)
    assert "up to date" in status.stdout
    # Both BPKD knobs at once: any stage outside BPKD's branch that read either would run.
    exp = run(["dvc", "exp", "run", "-S", "loss.edge_weight=5.0", "-S", "loss.edge_norm=frame"], smoke_repo)
    ran = sorted(line.split("'")[1] for line in exp.stdout.splitlines() if line.startswith("Running stage"))
    assert ran == ["curves@synthetic-hrnet_w48_w18s", "distill@synthetic-hrnet_w48_w18s-bpkd",
                   "evaluate@synthetic-hrnet_w48_w18s-bpkd", "method@bpkd", "qualitative@synthetic-hrnet_w48_w18s",
                   "report"], ran
    loss = yaml.safe_load((smoke_repo / "params.yaml").read_text())["loss"]
    assert (loss["edge_weight"], loss["edge_norm"]) == (5.0, "frame")


def test_readme_block_and_plots_page_show_the_run(smoke_repo, tmp_path):
    readme = (smoke_repo / "README.md").read_text()
    block = readme.split("<!-- results:start -->")[1].split("<!-- results:end -->")[0]
    tables = (smoke_repo / "metrics/tables.md").read_text()
    rows = [line for line in block.splitlines() if line.startswith("|")]
    assert rows and rows == [line for line in tables.splitlines() if line.startswith("|")]
    proc = run(["dvc", "plots", "show", "--out", str(tmp_path / "plots")], smoke_repo)
    html = (tmp_path / "plots" / "index.html").read_text()
    expected = [f"metrics/per_class/synthetic/{PAIR}/{m}.json" for m in MODELS]
    expected += [f"metrics/synthetic/{PAIR}/train/{m}/plots/metrics/decode.loss_ce.tsv" for m in MODELS]
    expected += [f"metrics/curves/synthetic/{PAIR}/{term}.tsv" for term in ("loss", "decode.loss_ce", "mIoU")]
    expected += [f"metrics/synthetic/{PAIR}/train/bpkd/plots/metrics/loss_bpkd_edge.tsv",
                 f"data/qualitative/synthetic/{PAIR}.png"]
    missing = [path for path in expected if path not in html]
    assert not missing, (missing, proc.stdout[-2000:])
