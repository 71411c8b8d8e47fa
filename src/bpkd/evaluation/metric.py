"""mmseg's ``IoUMetric``, keeping the per-class IoU it already computes.

``IoUMetric.compute_metrics`` prints per-class IoU/Acc but returns only the
summary; the pipeline also needs the per-class values for its plots, so this
subclass recomputes them from the same accumulated areas with the same function.
"""
from collections import OrderedDict

from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS


@METRICS.register_module()
class PerClassIoUMetric(IoUMetric):
    """``IoUMetric`` that also stores ``self.per_class`` ({class: {IoU, Acc}}, in %)."""

    def compute_metrics(self, results: list) -> dict:
        summary = super().compute_metrics(results)
        areas = tuple(zip(*results))
        totals = [sum(a) for a in areas[:4]]
        ret = self.total_area_to_metrics(*totals, ["mIoU"], self.nan_to_num, self.beta)
        classes = self.dataset_meta["classes"]
        self.per_class = OrderedDict(
            (name, {"IoU": round(float(iou) * 100, 2), "Acc": round(float(acc) * 100, 2)})
            for name, iou, acc in zip(classes, ret["IoU"], ret["Acc"]))
        return summary
