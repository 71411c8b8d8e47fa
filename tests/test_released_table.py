"""The paper's tables from released checkpoints, with no student trained: a real `dvc status`
and `dvc repro` of the smoke run with `methods: []`, `models: []`, `baseline_seeds: []` and
every model in `released`, its checkpoints served from 127.0.0.1 and listed, as checkpoints
of one's own, under `synthetic` in the copy's registry.yaml (docs/weights.md, "The paper's
tables without training"). The shared smoke run's copy saves the stages this change does
not reach (prepare@, complexity@, method@)."""
import hashlib
import json
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from bpkd.report.cells import number
from bpkd.report.tables import METHOD_LABELS
from bpkd.weights.convert import build_arch

from conftest import tool_env
from test_weights import _mmrazor_style, _mmseg_0x_zoo_file, _Server

DATASET, PAIR = "synthetic", "hrnet_w48_w18s"
MODELS = ("baseline", "skds", "ifvd", "cirkd", "cwd", "bpkd")
# Stages that train or evaluate a student trained here; none may exist, run or be pending.
STUDENT_STAGES = "baseline|baseline_same_compute|distill|evaluate|evaluate_baseline|evaluate_same_compute"


@pytest.fixture
def server():
    srv = _Server()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _constant_student(weights: dict, label: int) -> dict:
    """``weights`` (a real HRNetV2P-W18-Small, the smoke pair's student) with a classifier
    that predicts class ``label`` at every pixel (zero weights, one-hot bias): its scores
    follow from the validation labels alone."""
    weights = weights.copy()
    head = weights["decode_head.conv_seg.bias"]
    weights["decode_head.conv_seg.weight"] = torch.zeros_like(weights["decode_head.conv_seg.weight"])
    weights["decode_head.conv_seg.bias"] = torch.nn.functional.one_hot(torch.tensor(label), len(head)).float()
    return weights


def _valid_labels(labels_dir: Path, ignore: int = 255) -> np.ndarray:
    """Every labelled pixel of the validation split, flat."""
    gt = np.concatenate([cv2.imread(str(f), cv2.IMREAD_UNCHANGED).ravel() for f in sorted(labels_dir.glob("*.png"))])
    return gt[gt != ignore]


def _expected_scores(valid: np.ndarray, label: int) -> dict[str, float]:
    """mIoU and aAcc (%) of a model that predicts ``label`` everywhere: IoU(label) is its
    share of the valid pixels, every other class present scores 0, absent ones are left
    out of the mean (mmseg's IoUMetric)."""
    share = float((valid == label).sum()) / valid.size
    present = set(np.unique(valid).tolist()) | {label}
    return {"aAcc": round(100 * share, 2), "mIoU": round(100 * share / len(present), 2)}


def _row(table_md: str, label: str) -> list[str]:
    """The cells of the first row of the first table in ``table_md`` whose Methods is ``label``."""
    for line in table_md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == label:
            return cells
    raise AssertionError(f"no row {label!r} in:\n{table_md}")


def test_released_checkpoints_fill_the_tables_with_no_student_trained(smoke_copy, server):
    started = time.monotonic()
    repo = smoke_copy
    env = dict(tool_env(), PYTHONPATH=str(repo / "src"))  # the stages import the copy's code and registry

    # The run as a user with no GPU for training sets it: every student released, none trained.
    tree = yaml.safe_load((repo / "params.yaml").read_text())
    tree.update(methods=[], models=[], released=list(MODELS), baseline_seeds=[])
    (repo / "params.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    # What the reference run trained is gone, as in a clone that never trained a student:
    # a table row can then only come from a released checkpoint.
    for top in ("data/models", "metrics/eval", "metrics/per_class", "metrics/cost", f"metrics/{DATASET}"):
        for seed_dir in (repo / top).rglob("seed*"):
            shutil.rmtree(seed_dir, ignore_errors=True)

    # One checkpoint per model, each predicting its own class, in the layouts the paper's
    # files come in: the baseline as mmseg 0.x's model zoo publishes, the distilled
    # students as mmrazor saves them (student under a prefix, teacher keys beside it).
    # The most frequent classes first, so that the six expected scores differ.
    valid = _valid_labels(repo / "data" / "prepared" / DATASET / "ann_dir" / "val")
    classes = [int(c) for c in np.argsort(-np.bincount(valid, minlength=10), kind="stable")[:len(MODELS)]]
    torch.manual_seed(0)
    student = build_arch("hrnet_w18s", num_classes=10).state_dict()
    entries, served = {}, {}
    for model, label in zip(MODELS, classes):
        weights = _constant_student(student, label)
        ckpt = _mmseg_0x_zoo_file(weights) if model == "baseline" else _mmrazor_style(weights, "architecture.model.")
        buf = repo.parent / f"{model}.pth"
        torch.save(ckpt, buf)
        name = f"{model}_hrnet_w18s_{DATASET}_released.pth"
        served[model] = (name, buf.read_bytes(), label)
        server.files["/" + name] = served[model][1]
        entries[model] = {"url": server.url("/" + name), "sha256": hashlib.sha256(served[model][1]).hexdigest()}
    # Listed in the copy's registry.yaml as a team would list checkpoints of its own.
    reg_file = repo / "src" / "bpkd" / "weights" / "registry.yaml"
    data = yaml.safe_load(reg_file.read_text())
    data["datasets"][DATASET] = {PAIR: {"released": entries}}
    reg_file.write_text(yaml.safe_dump(data, sort_keys=False))

    status = subprocess.run(["dvc", "status", "--json"], cwd=repo, env=env, capture_output=True, text=True)
    assert status.returncode == 0, status.stderr[-3000:]
    pending = set(json.loads(status.stdout))
    assert {f"released@{DATASET}-{PAIR}-{m}" for m in MODELS} <= pending, pending
    assert not [s for s in pending if re.match(rf"({STUDENT_STAGES})@", s)], pending

    proc = subprocess.run(["dvc", "repro"], cwd=repo, env=env, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    ran = re.findall(r"Running stage '([^']+)'", log)
    # The teacher reruns only because the copy's registry.yaml (one of its deps) changed;
    # it is an input, not a student. method@ stages (configs, not training) are up to date.
    assert set(ran) == {f"teacher@{DATASET}-{PAIR}", f"evaluate_teacher@{DATASET}-{PAIR}",
                        *(f"released@{DATASET}-{PAIR}-{m}" for m in MODELS),
                        f"charts@{DATASET}-{PAIR}", f"qualitative@{DATASET}-{PAIR}", f"boundary@{DATASET}-{PAIR}",
                        "report"}, ran
    assert not re.search(rf"'({STUDENT_STAGES})@", log), "a student training or evaluation stage is in the log"
    # Each file downloaded once, its SHA-256 checked against the registry, converted.
    assert sorted(path for path, _ in server.requests) == sorted("/" + name for name, _, _ in served.values())
    for model, (name, payload, _) in served.items():
        sha = hashlib.sha256(payload).hexdigest()
        assert (f"data/weights/downloads/{name}: SHA-256 {sha[:16]}... verified ({server.url('/' + name)})"
                in log), model
        assert f"data/weights/converted/hrnet_w18s/{name}: converted from {server.url('/' + name)}" in log, model

    tables = (repo / "metrics" / "tables.md").read_text()
    labels = {"baseline": "S: HRNetV2P-W18S", **METHOD_LABELS}
    for model in MODELS:
        scores = json.loads((repo / "metrics" / "eval" / DATASET / PAIR / f"{model}.json").read_text())
        expected = _expected_scores(valid, served[model][2])
        assert (scores["mIoU"], scores["aAcc"]) == pytest.approx((expected["mIoU"], expected["aAcc"]), abs=0.01), model
        row = _row(tables, labels[model])  # the paper's layout: Methods, FLOPs, Parameters, mIoU, mAcc
        assert row[3:5] == [number(scores["mIoU"]), number(scores["mAcc"])], (model, row)
    assert len({_row(tables, labels[m])[3] for m in MODELS}) == len(MODELS)  # six different rows, none swapped
    assert _row(tables, "T: HRNetV2P-W48")[3] != "—"
    assert ("- Released checkpoints (synthetic): S: HRNetV2P-W18S, SKDS, IFVD, CIRKD, CWD, BPKD(Ours): downloaded "
            "and evaluated by `released@…`, not trained here") in tables
    # Every released model is drawn on the plots page's per-class chart.
    per_class = (repo / "metrics" / "charts" / DATASET / PAIR / "per_class.tsv").read_text()
    assert {line.split("\t")[1] for line in per_class.splitlines()[1:]} == {"teacher", *MODELS}

    after = subprocess.run(["dvc", "status"], cwd=repo, env=env, capture_output=True, text=True)
    assert "Data and pipelines are up to date" in after.stdout, after.stdout
    print(f"released-table test: {time.monotonic() - started:.0f} s after the shared smoke run")
