"""The ``boundary@<dataset>-<pair>`` stage's work: profiles, uncertainty panels and CAMs.

Every model of a dataset/pair (the teacher, the baseline at each of ``baseline_seeds``,
each distilled student at each of ``seeds``) predicts every validation image once,
through the dataset's mmseg test pipeline and ``test_step`` as in evaluation (sliding
windows where the dataset tests so), and the image's teacher logits are the target of
the students' KL. Images are the outer loop, so memory holds one image's logits, on
any dataset. Outputs:

* in ``out`` (``metrics/boundary/<dataset>/<pair>``, DVC metrics): ``teacher.json``,
  ``seed<N>/<model>.json``, the :class:`~.profile.BoundaryProfile` bins;
* in ``figures`` (``metrics/boundary_plots/<dataset>/<pair>``): ``error.tsv``,
  ``entropy.tsv``, ``kl_to_teacher.tsv``, the plot tables (one line per model, the first
  seed's run of each, as the qualitative grid), their PNGs, ``summary.json`` (every
  model's boundary and interior bins: the stage's DVC metric), ``uncertainty.png``
  (:mod:`bpkd.report.uncertainty`) and ``cam.png`` (:mod:`bpkd.report.cam`).
"""
from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_path, write_json
from ..distill.band_radius import EVAL_EDGE_RADIUS, PAPER_FRAME_HEIGHT, band_radius
from ..distill.masks import edge_body_masks
from .profile import INTERIOR, BoundaryProfile, distance_to_boundary

STATS = ("error", "entropy", "kl_to_teacher")
Y_LABELS = {"error": "pixel error rate (0-1)", "entropy": "mean prediction entropy (nats)",
            "kl_to_teacher": "mean KL(teacher || student) (nats)"}
TITLES = {"error": "error", "entropy": "entropy", "kl_to_teacher": "KL(teacher || student)"}


@dataclass
class Model:
    name: str  # 'teacher', 'baseline' or a method
    seed: int | None  # None: the teacher
    title: str
    arch: str
    checkpoint: str
    drawn: bool  # a line of the plots and a column of the panels


X_LABEL = "distance to the nearest boundary (px at the paper's resolution; last point: the interior)"


def plot_props(stat: str, dataset: str, pair: str) -> dict:
    """The properties of a plot table, as ``dvc.yaml`` declares them (kept equal by a test)."""
    return dict(template="overlay", x="distance", y=stat, x_label=X_LABEL, y_label=Y_LABELS[stat],
                title=f"{dataset} / {pair}: {TITLES[stat]} against distance to a boundary")


def profile_tables(profiles: dict[str, list[dict]], interior_x: float) -> dict[str, list[dict]]:
    """Rows ``{distance, run, <stat>}`` per statistic (the interior at ``interior_x``)."""
    tables = {}
    for stat in STATS:
        rows = []
        for run, bins in profiles.items():
            for b in bins:
                if b.get(stat) is not None:
                    x = interior_x if b["distance"] == INTERIOR else b["distance_paper_px"]
                    rows.append({"distance": x, "run": run, stat: b[stat]})
        tables[stat] = rows
    return tables


def _empty_chart(title: str) -> dict:
    """A Vega-Lite chart of ``title`` with no data, saying why."""
    return {"$schema": "https://vega.github.io/schema/vega-lite/v5.json", "title": title, "width": 400, "height": 60,
            "data": {"values": [{"text": "no student trained here to draw (released ones: the report's tables)"}]},
            "mark": {"type": "text", "fontSize": 13}, "encoding": {"text": {"field": "text"}}}


def _write_tsv(path: Path, rows: list[dict], stat: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["distance", "run", stat], delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def class_named(name: str, classes: list[str], dataset: str) -> str:
    """The class of ``classes`` that ``boundary.cam_class`` names, matched without case: one
    name serves every dataset ("car": Cityscapes' car, CamVid's Car)."""
    by_name = {c.lower(): c for c in classes}
    if name.lower() not in by_name:
        from ..params import ParamsError

        raise ParamsError(f"params.yaml: boundary.cam_class = {name!r} is not a class of {dataset}; "
                          f"expected one of {classes} (case aside)")
    return by_name[name.lower()]


def run(*, dataset: str, pair: str, data_root: str, image_hw, crop, models: list[Model], out: Path, figures: Path,
        max_distance_paper: int, panel_images: list[int], cam_image: int, cam_class: str, kl_scale: float,
        templates_dir: Path, echo=print) -> dict:
    """Compute and write everything; returns ``{"seconds": ..., "images": ...}``."""
    import cv2
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules

    from ..datasets import mmseg_dataset  # noqa: F401  (registers the synthetic dataset)
    from ..datasets import specs
    from ..models.build import build_model, model_config
    from ..report.cam import grad_cam, render_cams
    from ..report.figures import _small_png, chart_spec, to_png
    from ..report.uncertainty import ImagePanel, ModelMaps, render_panels
    from ..training.config import data_scale, dataset_config, test_pipeline
    from ..weights import load_into

    start = time.monotonic()
    register_all_modules(init_default_scope=True)
    spec = specs.get(dataset)
    ds = DATASETS.build(dataset_config(spec, data_root, "val", test_pipeline(data_scale(spec, image_hw))))
    classes = list(ds.metainfo["classes"])
    cam_class = class_named(cam_class, classes, dataset)
    for key, idx in [("boundary.panel_images", i) for i in panel_images] + [("boundary.cam_image", cam_image)]:
        if idx >= len(ds):
            from ..params import ParamsError

            raise ParamsError(f"params.yaml: {key} has index {idx}; {dataset}'s validation split has {len(ds)} images")
    palette = np.asarray(ds.metainfo["palette"], np.uint8)
    max_d = band_radius(max_distance_paper, image_hw)  # px of the labels, as every band
    scale = PAPER_FRAME_HEIGHT / image_hw[0] if image_hw else 1.0  # paper px per label px
    edge_radius = band_radius(EVAL_EDGE_RADIUS, image_hw)

    nets = {}
    for m in models:
        net = build_model(model_config(m.arch, spec.num_classes, crop or spec.crop, test_mode=spec.test_mode,
                                       slide_stride=spec.slide_stride, ignore_index=spec.ignore_index)).eval()
        load_into(net, m.checkpoint)
        nets[(m.name, m.seed)] = net
    teacher_key = ("teacher", None)
    profiles = {k: BoundaryProfile(max_d, spec.num_classes, spec.ignore_index) for k in nets}
    panels: list[ImagePanel] = []
    cams: list[tuple[str, np.ndarray]] = []
    cam_rgb = cam_region = None
    for i in range(len(ds)):
        s = ds[i]
        label = s["data_samples"].gt_sem_seg.data[0]
        distance = distance_to_boundary(label, max_d, spec.ignore_index)
        valid = (label != spec.ignore_index).numpy()
        logits = {}
        with torch.no_grad():
            for key, net in nets.items():  # the teacher first: models list starts with it
                pred = net.test_step(dict(inputs=[s["inputs"]], data_samples=[s["data_samples"]]))[0]
                logits[key] = pred.seg_logits.data.float().cpu()
                teacher = None if key == teacher_key else logits[teacher_key]
                profiles[key].add(label, logits[key], teacher, distance)
        if i in panel_images or i == cam_image:
            rgb = cv2.cvtColor(cv2.imread(s["data_samples"].img_path), cv2.COLOR_BGR2RGB)
            rgb = cv2.resize(rgb, (label.shape[1], label.shape[0]))
        if i in panel_images:
            label_rgb = np.zeros((*label.shape, 3), np.uint8)
            label_rgb[valid] = palette[label.numpy()[valid]]
            edge, _ = edge_body_masks(label[None].long(), edge_radius, spec.ignore_index)
            maps = []
            for m in models:
                if not m.drawn:
                    continue
                z = logits[(m.name, m.seed)]
                log_p = torch.log_softmax(z.double(), 0)
                entropy = -(log_p.exp() * log_p).sum(0).numpy()
                error = (log_p.argmax(0) != label).numpy() & valid
                kl = None
                if m.name != "teacher":
                    log_t = torch.log_softmax(logits[teacher_key].double(), 0)
                    kl = np.where(valid, (log_t.exp() * (log_t - log_p)).sum(0).numpy(), 0.0)
                maps.append(ModelMaps(m.title, np.where(valid, entropy, 0.0), error, kl))
            panels.append(ImagePanel(i, rgb, label_rgb, edge[0].numpy(), maps))
        if i == cam_image:
            cam_rgb, cam_region = rgb, (label == classes.index(cam_class)).numpy()
            for m in models:
                if m.drawn:
                    net = nets[(m.name, m.seed)]
                    inputs = net.data_preprocessor(dict(inputs=[s["inputs"]], data_samples=[s["data_samples"]]),
                                                   False)["inputs"]
                    cams.append((m.title, grad_cam(net, inputs, label, classes.index(cam_class))))
        if (i + 1) % 10 == 0 or i + 1 == len(ds):
            echo(f"boundary: {i + 1}/{len(ds)} images, {time.monotonic() - start:.0f} s")

    drawn, summary = {}, {}
    with atomic_path(out, is_dir=True) as tmp_out:  # the whole folder appears at once
        for m in models:
            bins = profiles[(m.name, m.seed)].bins(paper_px_per_px=scale)
            # `bins` is the profile; `boundary` (bin 0) and `interior` repeat its two ends as
            # plain numbers, which `dvc metrics show/diff` can print (it does not read lists).
            ends = {"boundary": bins[0], "interior": bins[-1]}
            profile = {"model": m.name, "seed": m.seed, "max_distance_px": max_d,
                       "paper_px_per_px": round(scale, 4), "edge_radius_px": edge_radius,
                       **{k: {s_: b[s_] for s_ in ("pixels", *STATS) if s_ in b} for k, b in ends.items()},
                       "bins": bins}
            write_json(tmp_out / (f"{m.name}.json" if m.seed is None else f"seed{m.seed}/{m.name}.json"), profile)
            summary[m.name if m.seed is None else f"{m.name}_seed{m.seed}"] = {k: profile[k] for k in ends}
            if m.drawn:
                drawn[m.title] = bins
    write_json(figures / "summary.json", summary)
    interior_x = round((max_d + 1) * scale, 2)
    for stat, rows in profile_tables(drawn, interior_x).items():
        _write_tsv(figures / f"{stat}.tsv", rows, stat)
        props = plot_props(stat, dataset, pair)
        # No rows: the KL chart when no student is drawn (every one released, none trained
        # here); its PNG, a declared output, then says so.
        spec_ = chart_spec(figures / f"{stat}.tsv", props, templates_dir) or _empty_chart(props["title"])
        with atomic_path(figures / f"{stat}.png") as tmp:
            tmp.write_bytes(to_png(spec_))
    from PIL import Image

    for name, png in (("uncertainty.png", render_panels(panels, spec.num_classes, kl_scale, edge_radius)),
                      ("cam.png", render_cams(cam_rgb, cams, cam_class, cam_image, cam_region))):
        with atomic_path(figures / name) as tmp:
            tmp.write_bytes(_small_png(Image.open(io.BytesIO(png)), 128))
    return {"seconds": round(time.monotonic() - start, 1), "images": len(ds)}

