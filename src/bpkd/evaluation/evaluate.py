"""Evaluate one checkpoint on a prepared dataset's evaluation split (validation; CamVid's
test split, where its peers report) with mmseg's test loop and ``IoUMetric``; write the
summary metrics and the per-class plot data."""
from __future__ import annotations

import tempfile
from pathlib import Path

from ..atomic import write_json
from ..datasets import specs
from ..distill.band_radius import EVAL_EDGE_RADIUS, band_radius
from ..models.build import model_config
from ..training.config import data_scale, val_parts
from ..weights import load_into


# mmseg's three, then the boundary-aware ones (bpkd.evaluation.region_metric).
SUMMARY_KEYS = ("mIoU", "mAcc", "aAcc", "mIoU_edge", "mIoU_body", "mBF")


def evaluate(*, dataset: str, arch: str, checkpoint: str, data_root: str, image_hw=None,
             crop=None) -> tuple[dict, dict]:
    """Returns ``(summary, per_class)``: summary has :data:`SUMMARY_KEYS`, in %, and
    ``edge_radius_px``, the radius of the edge band in px of the evaluated images."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from ..datasets import mmseg_dataset  # noqa: F401  (registers the synthetic dataset)
    from . import region_metric  # noqa: F401  (registers RegionIoUMetric)

    spec = specs.get(dataset)
    scale = data_scale(spec, image_hw)
    model = model_config(arch, spec.num_classes, crop or spec.crop, test_mode=spec.test_mode,
                         slide_stride=spec.slide_stride, ignore_index=spec.ignore_index)
    val = val_parts(spec, data_root, scale, split=spec.eval_split)
    radius = band_radius(EVAL_EDGE_RADIUS, image_hw)
    val["evaluator"].update(type="RegionIoUMetric", edge_width=radius)
    with tempfile.TemporaryDirectory(prefix="bpkd-eval-") as work_dir:
        cfg = Config(dict(default_scope="mmseg", model=model.to_dict(), work_dir=work_dir,
                          test_dataloader=val["dataloader"], test_evaluator=val["evaluator"],
                          test_cfg=dict(type="TestLoop"), log_level="WARNING",
                          default_hooks=dict(logger=dict(type="LoggerHook", interval=50)),
                          env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend="gloo")),
                          visualizer=dict(type="SegLocalVisualizer", name="visualizer")))
        runner = Runner.from_cfg(cfg)
        load_into(runner.model, checkpoint)
        summary = runner.test()
        per_class = runner.test_evaluator.metrics[0].per_class
    scores = {**{k: round(float(summary[k]), 2) for k in SUMMARY_KEYS}, "edge_radius_px": radius}
    if spec.eval_split != "val":  # said where it is not the validation split every other dataset reports
        scores["split"] = spec.eval_split
    return scores, per_class


def write_metrics(summary: dict, per_class: dict, metrics_out: str | Path, per_class_out: str | Path) -> None:
    """Each file is written atomically; the summary (what ``report`` reads) goes last,
    so a stage killed between the two writes leaves no new summary without its
    per-class data."""
    # A list of rows is what `dvc plots` draws as a bar chart (x: IoU, y: class).
    write_json(per_class_out, [{"class": name, "IoU": v["IoU"], "Acc": v["Acc"]} for name, v in per_class.items()])
    write_json(metrics_out, summary)


def write_not_released(metrics_out: str | Path, per_class_out: str | Path) -> None:
    """What ``released@`` writes for a model the paper released no file of for that
    dataset and pair (its README's row has no link): no scores, so the report's row shows
    ``—`` and its per-class chart draws no bars for it."""
    write_json(per_class_out, [])
    write_json(metrics_out, {"released": False})
