"""The boundary-distance profile on a hand-made 4x6 label map, every number by hand."""
import math

import pytest
import torch

from bpkd.boundary.profile import BoundaryProfile, distance_to_boundary

# Class 0 on the left, class 1 on the right, one ignore pixel bottom-left.
LABEL = torch.tensor([[0, 0, 0, 1, 1, 1],
                      [0, 0, 0, 1, 1, 1],
                      [0, 0, 0, 1, 1, 1],
                      [255, 0, 0, 1, 1, 1]])


def test_distance_is_the_band_geometry_chebyshev_minus_one():
    # columns 2|3 touch the other class (0); 1 and 4 need a radius-2 window (1); 0 and 5
    # radius 3 (2); the ignore pixel is in no bin and creates no boundary.
    assert distance_to_boundary(LABEL, 2).tolist() == [[2, 1, 0, 0, 1, 2]] * 3 + [[-1, 1, 0, 0, 1, 2]]
    # beyond max_distance: the interior bin, max_distance + 1
    assert distance_to_boundary(LABEL, 1)[0].tolist() == [2, 1, 0, 0, 1, 2]
    assert distance_to_boundary(LABEL, 0)[0].tolist() == [1, 1, 0, 0, 1, 1]
    with pytest.raises(ValueError, match="max_distance"):
        distance_to_boundary(LABEL, -1)


def _log(p0):  # two-class logits with softmax (p0, 1 - p0)
    return [math.log(p0), math.log(1 - p0)]


def test_error_entropy_and_kl_per_bin_by_hand():
    # student: uniform on the boundary columns (argmax 0: wrong on class-1 pixels);
    # 0.9 on the true class at distance 1; column 0 predicts class 1 (wrong), column 5 right.
    per_column = [_log(0.1), _log(0.9), [0.0, 0.0], [0.0, 0.0], _log(0.1), _log(0.1)]
    logits = torch.tensor(per_column).T[:, None, :].expand(2, 4, 6).contiguous()
    teacher = torch.zeros(2, 4, 6)  # uniform everywhere
    prof = BoundaryProfile(max_distance=1, num_classes=2)
    prof.add(LABEL, logits, teacher)
    b0, b1, inner = prof.bins(paper_px_per_px=4.0)
    h09 = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))  # 0.325083
    kl09 = math.log(0.5) - 0.5 * (math.log(0.9) + math.log(0.1))  # KL(uniform || (0.9, 0.1)) = 0.510826
    assert (b0["distance"], b0["distance_paper_px"], b0["pixels"]) == (0, 0, 8)
    assert b0["error"] == pytest.approx(0.5) and b0["entropy"] == pytest.approx(math.log(2), abs=1e-6)
    assert b0["kl_to_teacher"] == pytest.approx(0.0, abs=1e-6)
    assert (b1["distance"], b1["distance_paper_px"], b1["pixels"]) == (1, 4.0, 8)
    assert b1["error"] == 0 and b1["entropy"] == pytest.approx(h09, abs=1e-6)
    assert b1["kl_to_teacher"] == pytest.approx(kl09, abs=1e-6)
    assert (inner["distance"], inner["pixels"]) == ("interior", 7)  # 3 + 4: the ignore pixel is out
    assert inner["error"] == pytest.approx(3 / 7, abs=1e-6) and inner["entropy"] == pytest.approx(h09, abs=1e-6)
    assert inner["kl_to_teacher"] == pytest.approx(kl09, abs=1e-6)


def test_teacher_itself_has_no_kl_and_two_images_pool_their_pixels():
    prof = BoundaryProfile(max_distance=1, num_classes=2)
    confident = torch.stack([(LABEL == 0).float() * 20 - 10, (LABEL == 1).float() * 20 - 10])
    prof.add(LABEL, confident)
    prof.add(LABEL, -confident)  # every valid pixel wrong on the second image
    rows = prof.bins()
    assert [r["pixels"] for r in rows] == [16, 16, 14]
    assert all(r["error"] == pytest.approx(0.5) for r in rows)
    assert "kl_to_teacher" not in rows[0]
    with pytest.raises(ValueError, match="teacher logits"):
        prof.add(LABEL, confident, torch.zeros(2, 4, 6))
    with pytest.raises(ValueError, match="expected \\(2, 4, 6\\)"):
        prof.add(LABEL, torch.zeros(3, 4, 6))


def test_smoke_repro_writes_a_profile_per_model_its_plots_and_the_figures(smoke_repo):
    import json

    import numpy as np
    import yaml
    from PIL import Image

    from bpkd.boundary.views import STATS, plot_props

    pair = "hrnet_w48_w18s"
    metrics = smoke_repo / f"metrics/boundary/synthetic/{pair}"
    files = sorted(str(p.relative_to(metrics)) for p in metrics.rglob("*.json"))
    students = [f"seed0/{m}.json" for m in ("baseline", "bpkd", "cirkd", "cwd", "ifvd", "skds")]
    assert files == sorted(["teacher.json", *students, "seed1/baseline.json", "seed2/baseline.json"])
    teacher = json.loads((metrics / "teacher.json").read_text())
    skds = json.loads((metrics / "seed0/skds.json").read_text())
    # smoke scenes are 64 px high: 16 paper px per px, so 32 paper px is 2 px, then the interior
    assert [b["distance"] for b in skds["bins"]] == [0, 1, 2, "interior"]
    assert [b["distance_paper_px"] for b in skds["bins"]][:3] == [0, 16, 32]
    assert "kl_to_teacher" not in teacher["bins"][0] and skds["bins"][0]["kl_to_teacher"] > 0
    assert [b["pixels"] for b in teacher["bins"]] == [b["pixels"] for b in skds["bins"]]  # same labels
    # The bins partition the validation set's labelled pixels, counted here from the label files.
    labels = sorted((smoke_repo / "data/prepared/synthetic/ann_dir/val").glob("*.png"))
    labelled = sum(int((np.asarray(Image.open(p)) != 255).sum()) for p in labels)
    assert len(labels) == 4 and sum(b["pixels"] for b in skds["bins"]) == labelled
    # Pooled over the bins, the error is evaluate@'s overall pixel error (1 - aAcc), from
    # the other stage's own pass over the same images and model.
    for name, profile in (("teacher", teacher), ("seed0/skds", skds)):
        wrong = sum(b["error"] * b["pixels"] for b in profile["bins"])
        scores = json.loads((smoke_repo / f"metrics/eval/synthetic/{pair}/{name}.json").read_text())
        assert wrong / labelled == pytest.approx(1 - scores["aAcc"] / 100, abs=1e-4), name
    plots = smoke_repo / f"metrics/boundary_plots/synthetic/{pair}"
    runs = {line.split("\t")[1] for line in (plots / "error.tsv").read_text().splitlines()[1:]}
    assert runs == {"teacher", "baseline", "SKDS", "IFVD", "CIRKD", "CWD", "BPKD(Ours)"}  # the first seed's
    kl_runs = {line.split("\t")[1] for line in (plots / "kl_to_teacher.tsv").read_text().splitlines()[1:]}
    assert kl_runs == runs - {"teacher"}
    for name in ("error.png", "entropy.png", "kl_to_teacher.png", "uncertainty.png", "cam.png"):
        assert (plots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    # dvc.yaml declares the plots with the properties the static PNGs are drawn with
    stage = yaml.safe_load((smoke_repo / "dvc.yaml").read_text())["stages"]["boundary"]
    declared = {next(iter(d)): d[next(iter(d))] for d in stage["plots"]}
    x_label = "distance to the nearest boundary (px at the paper's resolution; last point: the interior)"
    y_labels = {"error": "pixel error rate (0-1)", "entropy": "mean prediction entropy (nats)",
                "kl_to_teacher": "mean KL(teacher || student) (nats)"}
    titles = {"error": "error", "entropy": "entropy", "kl_to_teacher": "KL(teacher || student)"}
    assert list(STATS) == list(y_labels)
    for stat in STATS:
        props = declared[f"metrics/boundary_plots/${{item.dataset}}/${{item.pair}}/{stat}.tsv"]
        expected = dict(template="overlay", x="distance", y=stat, x_label=x_label, y_label=y_labels[stat],
                        title=f"${{item.dataset}} / ${{item.pair}}: {titles[stat]} against distance to a boundary")
        assert {k: props.get(k) for k in expected} == expected, stat
        # ... and the static PNG is drawn with the same properties
        assert plot_props(stat, "${item.dataset}", "${item.pair}") == expected, stat
