"""Boundary-aware evaluation: mIoU on the ground truth's edge band and body, and the
boundary F-score, next to mmseg's usual mIoU/mAcc/aAcc.

BPKD's claim is about boundaries, which a whole-image mIoU dilutes. Edge and body
use the same definition as BPKD's training masks (:func:`bpkd.distill.masks.edge_body_masks`)
but a fixed evaluation radius (``edge_width``; the evaluate stage sets 3 px at the
paper's resolution, converted to the images' scale by :mod:`bpkd.distill.band_radius`:
1 px on the demo's 256x512 scenes), never the training knob ``loss.edge_width``, so
that an ablation of that knob is measured with an unchanged ruler. The region mIoUs
reuse ``IoUMetric.intersect_and_union`` and ``total_area_to_metrics`` on the label map
with every pixel outside the region set to the ignore index: the same confusion-matrix
machinery, only masked.

Boundary F-score (Csurka et al., "What is a good evaluation measure for semantic
segmentation?", BMVC 2013): per class, the boundary pixels of the prediction and
of the ground truth (pixels whose 3x3 neighbourhood holds another class; void
pixels excluded) are matched within ``bf_tolerance`` pixels; precision and recall
are accumulated over the whole split per class, F = 2PR/(P+R), averaged over the
classes that have ground-truth boundaries.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from mmseg.registry import METRICS

from ..distill.masks import edge_body_masks
from .metric import PerClassIoUMetric


def _boundary(y: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Pixels of ``y`` (H, W) whose 3x3 neighbourhood holds another class, within ``valid``."""
    yf = y[None, None].float()
    up = F.max_pool2d(yf, 3, stride=1, padding=1)
    down = -F.max_pool2d(-yf, 3, stride=1, padding=1)
    return (up != down)[0, 0] & valid


def _dilate(mask: torch.Tensor, r: int) -> torch.Tensor:
    return F.max_pool2d(mask[None, None].float(), 2 * r + 1, stride=1, padding=r)[0, 0] > 0


@METRICS.register_module()
class RegionIoUMetric(PerClassIoUMetric):
    """``IoUMetric`` + edge/body mIoU + boundary F-score (all in %).

    Args:
        edge_width: radius of the evaluation edge band (window ``2r+1``).
        bf_tolerance: distance in pixels within which boundary pixels match.
    """

    def __init__(self, edge_width: int = 3, bf_tolerance: int = 2, **kwargs) -> None:
        super().__init__(**kwargs)
        self.edge_width = edge_width
        self.bf_tolerance = bf_tolerance

    def process(self, data_batch: dict, data_samples) -> None:
        k, ign = len(self.dataset_meta["classes"]), self.ignore_index
        for sample in data_samples:
            pred = sample["pred_sem_seg"]["data"].squeeze()
            label = sample["gt_sem_seg"]["data"].squeeze().to(pred)
            edge, body = edge_body_masks(label[None].long(), self.edge_width, ign)
            areas = [self.intersect_and_union(pred, label, k, ign)]
            for region in (edge[0], body[0]):
                areas.append(self.intersect_and_union(pred, label.masked_fill(~region, ign), k, ign))
            # Everything in one tuple per image: mmengine gathers only ``self.results``
            # across processes, so the extra sums survive distributed evaluation.
            self.results.append((*areas[0], *areas[1], *areas[2], *self._bf_counts(pred, label, k)))

    def _bf_counts(self, pred: torch.Tensor, label: torch.Tensor, k: int):
        """Per class: matched / all predicted boundary pixels, matched / all GT boundary pixels."""
        valid = label != self.ignore_index
        b_pred, b_gt = _boundary(pred, valid), _boundary(label, valid)
        counts = torch.zeros(4, k, dtype=torch.float64)
        for c in torch.unique(torch.cat([pred[b_pred], label[b_gt]])).tolist():
            if not 0 <= c < k:
                continue
            bp, bg = b_pred & (pred == c), b_gt & (label == c)
            counts[0, c] = (bp & _dilate(bg, self.bf_tolerance)).sum()
            counts[1, c] = bp.sum()
            counts[2, c] = (bg & _dilate(bp, self.bf_tolerance)).sum()
            counts[3, c] = bg.sum()
        return tuple(counts)

    def compute_metrics(self, results: list) -> dict:
        summary = super().compute_metrics([r[:4] for r in results])
        for name, first in (("mIoU_edge", 4), ("mIoU_body", 8)):
            totals = [sum(r[i] for r in results) for i in range(first, first + 4)]
            iou = self.total_area_to_metrics(*totals, ["mIoU"], self.nan_to_num, self.beta)["IoU"]
            # Classes absent from the region (union 0 -> nan) do not count, as in mIoU.
            summary[name] = round(float(torch.tensor(iou).nanmean()) * 100, 2)
        hit_p, n_p, hit_g, n_g = (sum(r[i] for r in results) for i in range(12, 16))
        precision = hit_p / n_p.clamp_min(1)
        recall = hit_g / n_g.clamp_min(1)
        f = 2 * precision * recall / (precision + recall).clamp_min(1e-12)
        present = n_g > 0
        summary["mBF"] = round(float(f[present].mean()) * 100, 2) if bool(present.any()) else float("nan")
        return summary
