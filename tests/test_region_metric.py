"""Edge/body mIoU and boundary F-score on hand-made maps (values worked out below)."""
import math

import pytest
import torch

from bpkd.evaluation.region_metric import RegionIoUMetric


def _score(pred, label, **kwargs):
    metric = RegionIoUMetric(iou_metrics=["mIoU"], **kwargs)
    metric.dataset_meta = {"classes": ("left", "right")}
    metric.process({}, [{"pred_sem_seg": {"data": pred[None]}, "gt_sem_seg": {"data": label[None]}}])
    return metric.compute_metrics(metric.results)


def _halves(split: int) -> torch.Tensor:
    y = torch.ones(8, 8, dtype=torch.long)
    y[:, :split] = 0
    return y


def test_perfect_prediction_scores_100_everywhere():
    label = _halves(4)
    m = _score(label.clone(), label, edge_width=1, bf_tolerance=1)
    assert (m["mIoU"], m["mIoU_edge"], m["mIoU_body"], m["mBF"]) == (100.0, 100.0, 100.0, 100.0)


def test_boundary_one_column_off():
    # GT: columns 0-3 class 0, 4-7 class 1. Prediction: columns 0-4 class 0.
    # Whole image: IoU0 = 32/40, IoU1 = 24/32 -> mIoU 77.5.
    # Edge band (r=1) = GT columns 3 and 4: class 0 I=8 U=16, class 1 I=0 U=8 -> 25.
    # Body (columns 0-2, 5-7) is all correct -> 100.
    # Boundaries: GT at columns 3|4, prediction at 4|5: one pixel apart, so they match
    # with a 1-px tolerance (F = 100) and not with 0 px (F = 0).
    label, pred = _halves(4), _halves(5)
    m = _score(pred, label, edge_width=1, bf_tolerance=1)
    assert m["mIoU"] == pytest.approx(77.5, abs=0.01)
    assert m["mIoU_edge"] == pytest.approx(25.0)
    assert m["mIoU_body"] == pytest.approx(100.0)
    assert m["mBF"] == pytest.approx(100.0)
    assert _score(pred, label, edge_width=1, bf_tolerance=0)["mBF"] == 0.0


def test_ignore_pixels_are_in_no_region():
    label, pred = _halves(4), _halves(4)
    label[:, 3:5] = 255  # the whole boundary is void
    pred[:, 3:5] = 1 - pred[:, 3:5]  # and wrong there, which must not count
    m = _score(pred, label, edge_width=1, bf_tolerance=1)
    assert m["mIoU"] == 100.0 and m["mIoU_body"] == 100.0
    assert math.isnan(m["mIoU_edge"])  # no valid pixel has another valid class within 1 px
