"""A qualitative grid: a few fixed validation images, one row each, with columns
image | ground truth | edge/body regions | teacher | baseline | each distilled student.

The kind of figure of the paper's visualisation page: where the students differ is
mostly at boundaries, which the edge/body column shows (white: the evaluation edge
band, grey: body, black: ignore). Images go through the dataset's own mmseg test
pipeline and each model's ``test_step``, exactly as in evaluation.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from ..datasets import specs
from ..distill.band_radius import EVAL_EDGE_RADIUS, band_radius
from ..distill.masks import edge_body_masks
from ..models.build import build_model, model_config
from ..training.config import data_scale, dataset_config, test_pipeline
from ..weights import load_into

HEADER = 18  # pixels of title above each column


def _colour(label: np.ndarray, palette: np.ndarray, ignore_index: int) -> np.ndarray:
    out = np.zeros((*label.shape, 3), np.uint8)
    valid = label != ignore_index
    out[valid] = palette[label[valid]][:, ::-1]  # palette is RGB, the grid is BGR (cv2)
    return out


def _titled(tile: np.ndarray, title: str) -> np.ndarray:
    head = np.full((HEADER, tile.shape[1], 3), 255, np.uint8)
    cv2.putText(head, title, (3, HEADER - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([head, tile], axis=0)


def render_grid(*, dataset: str, data_root: str, image_hw, crop, models: list[tuple[str, str, str]],
                indices: list[int]) -> np.ndarray:
    """The grid as a BGR image; ``models`` are ``(title, arch, checkpoint)`` columns."""
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules

    from ..datasets import mmseg_dataset  # noqa: F401  (registers the synthetic dataset)

    register_all_modules(init_default_scope=True)  # transforms resolve in mmseg's scope

    spec = specs.get(dataset)
    edge_width = band_radius(EVAL_EDGE_RADIUS, image_hw)  # the evaluation's band
    ds = DATASETS.build(dataset_config(spec, data_root, "val", test_pipeline(data_scale(spec, image_hw))))
    palette = np.asarray(ds.metainfo["palette"], np.uint8)
    samples = [ds[i % len(ds)] for i in indices]
    columns: list[list[np.ndarray]] = [[] for _ in samples]
    for row, s in zip(columns, samples):
        img = cv2.imread(s["data_samples"].img_path)
        label = s["data_samples"].gt_sem_seg.data[0].numpy()
        img = cv2.resize(img, (label.shape[1], label.shape[0]))
        edge, body = edge_body_masks(torch.from_numpy(label)[None].long(), edge_width, spec.ignore_index)
        regions = np.zeros_like(img)
        regions[body[0].numpy()] = 128
        regions[edge[0].numpy()] = 255
        row += [_titled(img, "image"), _titled(_colour(label, palette, spec.ignore_index), "ground truth"),
                _titled(regions, f"edge (r={edge_width}) / body")]
    for title, arch, checkpoint in models:
        model = build_model(model_config(arch, spec.num_classes, crop or spec.crop, test_mode=spec.test_mode,
                                         slide_stride=spec.slide_stride, ignore_index=spec.ignore_index)).eval()
        load_into(model, checkpoint)
        with torch.no_grad():
            for row, s in zip(columns, samples):
                pred = model.test_step(dict(inputs=[s["inputs"]], data_samples=[s["data_samples"]]))[0]
                row.append(_titled(_colour(pred.pred_sem_seg.data[0].cpu().numpy(), palette, spec.ignore_index),
                                   title))
    rows = [np.concatenate(r, axis=1) for r in columns]
    return np.concatenate(rows, axis=0)
