"""How strongly each reading of BPKD's edge loss pulls on the student, beside CWD.

    python -m bpkd.bench.loss_scale [--pair hrnet_w48_w18s] [--teacher PATH] [--batches 2]

The paper's Figure 3 ends the edge loss in one box, "Sum / Mask Pixels", without
saying which pixels it counts (``shared/reference/kd_methods.md`` section 1.6). Each
reading (``loss.edge_norm``, :data:`bpkd.distill.losses.bpkd.EDGE_NORMS`) gives the
published weights (edge 50, body 20, alpha 2, radius 3) a different strength. This
measures it as the gradient-norm ratio of a term to the decode cross-entropy, on the
student's parameters, for:

* every reading's edge term and the body term at ``params.yaml``'s ``loss`` group;
* CWD at its default (weight 3, tau 4) and at mmrazor's setting (weight 5, tau 1), the
  published settings of the only other logit-distillation method, measured the same way;
* the pixel-wise KD term of SKDS and IFVD in both of ``params.yaml``'s presets
  (``<method>.benchmark`` and ``<method>.official``: weight, tau, divergence and
  reduction, :func:`bpkd.distill.losses.kd.pixel_kd`), which shows how strongly the
  authors' normalisation pulls at the demo's batch size;

in two geometries: ``demo`` (batches drawn through the ``demo`` profile's own train
pipeline: its synthetic images, random resize and crop) and ``paper`` (the synthetic
generator at 512x1024, whole 512x1024 images as one crop, as the paper's Cityscapes
crop); and in two states of the student: at initialisation, and after
``--train-iters`` plain (cross-entropy) SGD iterations on demo batches. The teacher
is the demo's trained teacher of the pair (``dvc repro teacher@synthetic-<pair>`` is
run first when it is missing): a PSPNet R101 teacher cannot be trained here, so the
paper-like geometry uses the same pair at the paper's image size.

The band radius ``edge_width`` is read at the paper's resolution
(:mod:`bpkd.distill.band_radius`): the demo geometry draws it converted to its images
(1 px for r = 3 on 256x512 scenes), as the distill stage does; the paper-like geometry
stands in for the paper's 512x1024 crops and draws r unconverted. It also measures the
share of logit cells that the band touches in each geometry (a cell with any class's
``M_E > 0``).

The rule that picks the default reading (stated before any mIoU was looked at):
the reference range is ``[min, max]`` of the CWD ratios over the four conditions,
widened by a factor 2 each way for batch-to-batch spread; a reading qualifies when
its edge ratio lies in that range in all four conditions; of those, the one whose
worst ``|log(ratio / centre)|`` is smallest wins (``centre``: the geometric mean of the
range). If none qualifies, the nearest by the same distance is named and flagged.

Prints one table per condition, then as its last line one JSON object:
``{"readings": {name: {"edge": r, "body": r}}, "cwd": r, "band_share": {"demo": s,
"paper": s}, "default": name, "chosen_by_rule": name, "within_range": bool,
"by_condition": {...}}``, where ``r`` is the ratio on the demo geometry at
initialisation and ``by_condition`` holds all four conditions.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

PAPER_HW = (512, 1024)
CWD_SETTINGS = {"cwd": {"weight": 3.0, "tau": 4.0}, "cwd_mmrazor": {"weight": 5.0, "tau": 1.0}}


def _demo_batches(params, count: int, batch: int, seed: int) -> list[dict]:
    """Batches as the demo's training sees them: scenes of the profile's size through
    the dataset's own mmseg train pipeline (minus file loading)."""
    from mmengine.dataset import Compose, pseudo_collate

    from ..datasets import specs
    from ..datasets.synthetic import render_scene
    from ..training.config import data_scale, train_pipeline

    syn = params.synthetic()
    spec = specs.get("synthetic")
    crop = params.train["student"].crop or spec.crop
    pipeline = Compose(train_pipeline(spec, crop, data_scale(spec, (syn.height, syn.width)))[2:])
    np.random.seed(seed)  # mmseg's random transforms draw from numpy's global generator
    out = []
    for b in range(count):
        samples = []
        for i in range(batch):
            img, label = render_scene(np.random.default_rng([seed, 7, b, i]), syn.height, syn.width)
            samples.append(pipeline(dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2],
                                         gt_seg_map=label, seg_fields=["gt_seg_map"], reduce_zero_label=False)))
        out.append(pseudo_collate(samples))
    return out


def prepared_batches(params, dataset: str, count: int, batch: int, seed: int,
                     root: str = "data/prepared") -> list[dict]:
    """Batches of a prepared dataset's train split (``prepare@<dataset>``'s output) as its
    training sees them: the dataset's own mmseg train pipeline, file loading included, on
    ``count * batch`` frames drawn by ``seed``, at the size ``dataset.json`` records."""
    import json
    from pathlib import Path

    from mmengine.dataset import Compose, pseudo_collate
    from mmengine.registry import DefaultScope
    from mmseg.utils import register_all_modules

    from ..datasets import specs
    from ..training.config import data_scale, train_pipeline

    register_all_modules(init_default_scope=False)  # the pipeline's transforms, in mmseg's scope below
    spec = specs.get(dataset)
    folder = Path(root, dataset)
    info_file = folder / "dataset.json"
    if not info_file.is_file():
        raise FileNotFoundError(f"{info_file}: not found; expected prepare@{dataset}'s output (dvc repro prepare@{dataset})")
    info = json.loads(info_file.read_text())
    image_hw = tuple(info["image_hw"]) if info.get("image_hw") else None
    crop = params.train["student"].crop or spec.crop
    with DefaultScope.overwrite_default_scope("mmseg"):
        pipeline = Compose(train_pipeline(spec, crop, data_scale(spec, image_hw)))
    prefix = spec.prefix("train")
    frames = sorted((folder / prefix["img_path"]).glob(f"*{spec.img_suffix}"))
    if len(frames) < count * batch:
        raise ValueError(f"{folder / prefix['img_path']}: {len(frames)} frames, fewer than {count * batch} asked for")
    picked = np.random.default_rng([seed, 9]).choice(len(frames), count * batch, replace=False)
    np.random.seed(seed)  # mmseg's random transforms draw from numpy's global generator
    out = []
    for b in range(count):
        samples = []
        for i in picked[b * batch:(b + 1) * batch]:
            name = frames[i].name.removesuffix(spec.img_suffix)
            samples.append(pipeline(dict(img_path=str(frames[i]), reduce_zero_label=spec.reduce_zero_label,
                                         seg_map_path=str(folder / prefix["seg_map_path"] / f"{name}{spec.seg_map_suffix}"),
                                         seg_fields=[])))
        out.append(pseudo_collate(samples))
    return out


def _paper_batches(count: int, batch: int, seed: int) -> list[dict]:
    """Whole 512x1024 synthetic images, packed as mmseg packs them."""
    from mmengine.dataset import pseudo_collate
    from mmseg.datasets.transforms import PackSegInputs

    from ..datasets.synthetic import render_scene

    pack = PackSegInputs()
    out = []
    for b in range(count):
        samples = []
        for i in range(batch):
            img, label = render_scene(np.random.default_rng([seed, 8, b, i]), *PAPER_HW)
            samples.append(pack(dict(img=img, img_shape=PAPER_HW, ori_shape=PAPER_HW, gt_seg_map=label,
                                     seg_fields=["gt_seg_map"])))
        out.append(pseudo_collate(samples))
    return out


class _Pair:
    """Student and frozen teacher with their decode-head logits recorded."""

    def __init__(self, pair: str, teacher_path: str, crop, num_classes: int) -> None:
        from ..distill.distiller import HeadRecorder
        from ..models.build import build_model, model_config
        from ..models.pairs import arch_of
        from ..weights import load_into

        torch.manual_seed(0)
        self.student = build_model(model_config(arch_of(pair, "student"), num_classes, crop))
        self.student.init_weights()
        self.teacher = build_model(model_config(arch_of(pair, "teacher"), num_classes, crop))
        load_into(self.teacher, teacher_path)
        self.teacher.eval().requires_grad_(False)
        self.rec_s = HeadRecorder(self.student.decode_head.conv_seg)
        self.rec_t = HeadRecorder(self.teacher.decode_head.conv_seg)
        self.params = [p for p in self.student.parameters() if p.requires_grad]

    def forward(self, data: dict):
        """One batch through the teacher (no grad) and the student in training mode:
        ``(student logits, teacher logits, labels, the student's own losses)``."""
        self.student.train()
        data = self.student.data_preprocessor(data, True)
        inputs, samples = data["inputs"], data["data_samples"]
        with torch.no_grad():
            self.teacher._forward(inputs)
        t = self.rec_t.take(False)
        losses = self.student.loss(inputs, samples)
        s = self.rec_s.take(False)
        labels = torch.stack([d.gt_sem_seg.data.squeeze(0) for d in samples]).long()
        return s, t, labels, losses

    def terms(self, data: dict, loss_params: dict, pixel_kd_settings: dict) -> dict[str, torch.Tensor]:
        """Every measured term on one batch, with the student in training mode."""
        from ..distill.losses.bpkd import EDGE_NORMS, BPKDLoss
        from ..distill.losses.cwd import CWDLoss
        from ..distill.losses.kd import pixel_kd

        s, t, labels, losses = self.forward(data)
        k = s.logits.shape[1]
        out = {"ce": losses["decode.loss_ce"]}
        for norm in EDGE_NORMS:
            bpkd = BPKDLoss(dict(loss_params, edge_norm=norm), num_classes=k, student_channels=0,
                            teacher_channels=0)(s, t, labels)
            out[f"edge:{norm}"] = bpkd["loss_bpkd_edge"]
            out["body"] = bpkd["loss_bpkd_body"]  # the same for every reading
        for name, cwd in CWD_SETTINGS.items():
            out[name] = CWDLoss(cwd, num_classes=k, student_channels=0, teacher_channels=0)(s, t, labels)["loss_cwd"]
        for name, kd in pixel_kd_settings.items():
            out[name] = kd["kd_weight"] * pixel_kd(s.logits, t.logits, kd["kd_tau"], kd["kd_divergence"],
                                                   kd["kd_reduction"])
        return out

    def ratios(self, batches: list[dict], loss_params: dict, pixel_kd_settings: dict) -> dict[str, float]:
        """Mean over batches of ``||grad term|| / ||grad CE||`` on the student's parameters."""
        sums: dict[str, float] = {}
        for data in batches:
            terms = self.terms(data, loss_params, pixel_kd_settings)
            norms = {}
            for name, value in terms.items():
                grads = torch.autograd.grad(value, self.params, retain_graph=True, allow_unused=True)
                norms[name] = math.sqrt(sum(float(g.pow(2).sum()) for g in grads if g is not None))
            for name, norm in norms.items():
                if name != "ce":
                    sums[name] = sums.get(name, 0.0) + norm / norms["ce"]
        return {name: total / len(batches) for name, total in sums.items()}

    def train_ce(self, batches: list[dict], lr: float, momentum: float, weight_decay: float) -> None:
        """Plain student iterations (cross-entropy only), mmengine's optimiser wrapper."""
        from mmengine.optim import OptimWrapper

        opt = OptimWrapper(torch.optim.SGD(self.params, lr=lr, momentum=momentum, weight_decay=weight_decay))
        self.student.train()
        for data in batches:
            self.student.train_step(data, opt)
            self.rec_s.take(False)  # drop what the hook recorded


def pixel_kd_settings(tree: dict) -> dict[str, dict]:
    """``{"<method>_kd:<preset>": knobs}``: the pixel-KD knobs of each preset of SKDS and IFVD."""
    from ..distill.method_config import active_params

    out = {}
    for method in ("skds", "ifvd"):
        for preset in ("benchmark", "official"):
            _, knobs = active_params(method, dict(tree[method], preset=preset), method)
            out[f"{method}_kd:{preset}"] = {k: knobs[k] for k in ("kd_weight", "kd_tau", "kd_divergence",
                                                                  "kd_reduction")}
    return out


def band_share(batches: list[dict], num_classes: int, edge_width: int, stride: int, ignore_index: int) -> float:
    """Share of logit cells (``stride`` below the label size) touched by the band."""
    from ..distill.masks import soft_edge_mask

    touched = cells = 0
    for data in batches:
        labels = torch.stack([d.gt_sem_seg.data.squeeze(0) for d in data["data_samples"]]).long()
        h, w = labels.shape[-2:]
        m_e = soft_edge_mask(labels, num_classes, edge_width, (h // stride, w // stride), ignore_index)
        touched += int((m_e > 0).any(dim=1).sum())
        cells += m_e.shape[0] * m_e.shape[2] * m_e.shape[3]
    return touched / cells


def choose(by_condition: dict[str, dict[str, float]], readings: list[str]) -> tuple[str, bool]:
    """The rule of the module docstring: ``(reading, within_range)``."""
    cwd = [r[name] for r in by_condition.values() for name in CWD_SETTINGS]
    low, high = min(cwd) / 2, max(cwd) * 2
    centre = math.sqrt(min(cwd) * max(cwd))

    def worst(reading: str) -> float:
        return max(abs(math.log(r[f"edge:{reading}"] / centre)) for r in by_condition.values())

    inside = [x for x in readings if all(low <= r[f"edge:{x}"] <= high for r in by_condition.values())]
    pool = inside or readings
    return min(pool, key=worst), bool(inside)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pair", default="hrnet_w48_w18s")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--teacher", help="teacher checkpoint (default: the demo's, data/models/synthetic/<pair>/"
                                      "teacher.pth, trained by dvc repro when missing)")
    ap.add_argument("--batches", type=int, default=2, help="batches averaged per condition")
    ap.add_argument("--paper-batch", type=int, default=1, help="images per paper-like batch")
    ap.add_argument("--train-iters", type=int, default=100, help="plain student iterations before the 2nd state")
    ap.add_argument("--share-images", type=int, default=32, help="images for the band share of each geometry")
    args = ap.parse_args(argv)
    from ..cli import quiet_library_noise

    quiet_library_noise()  # the OneDL notice and mmcv-lite's MSDA warning, as in every stage

    import yaml
    from tabulate import tabulate

    from ..datasets import specs
    from ..distill.band_radius import method_at_image_scale
    from ..distill.losses.bpkd import EDGE_NORMS, BPKDLoss
    from ..params import Params

    from mmengine.logging import MMLogger
    from mmseg.utils import register_all_modules

    register_all_modules()  # mmseg's transforms and models, with mmseg as the default scope
    MMLogger.get_current_instance().setLevel("WARNING")  # not every weight's init line
    tree = yaml.safe_load(open(args.params))
    params = Params(dict(tree, profile="demo"))
    loss_params = dict(tree.get("loss") or {})
    default = BPKDLoss(loss_params, num_classes=1, student_channels=0, teacher_channels=0)
    syn = params.synthetic()
    demo_params = method_at_image_scale(BPKDLoss, loss_params, (syn.height, syn.width))
    demo_radius = demo_params["edge_width"]
    teacher = args.teacher or f"data/models/synthetic/{args.pair}/teacher.pth"
    if not Path(teacher).is_file():
        if args.teacher:
            raise SystemExit(f"{teacher}: no such teacher checkpoint")
        print(f"{teacher} is missing: training the demo teacher first (dvc repro teacher@synthetic-{args.pair})",
              flush=True)
        subprocess.run(["dvc", "repro", f"teacher@synthetic-{args.pair}"], check=True)
    spec = specs.get("synthetic")
    k = spec.num_classes
    settings = params.train["student"]
    demo = _demo_batches(params, args.batches, settings.batch_size, seed=1)
    paper = _paper_batches(args.batches, args.paper_batch, seed=1)
    model = _Pair(args.pair, teacher, settings.crop or spec.crop, k)
    by_condition: dict[str, dict[str, float]] = {}
    kd_settings = pixel_kd_settings(tree)
    by_condition["demo, init"] = model.ratios(demo, demo_params, kd_settings)
    by_condition["paper, init"] = model.ratios(paper, loss_params, kd_settings)
    model.train_ce(_demo_batches(params, args.train_iters, settings.batch_size, seed=2), settings.lr,
                   settings.momentum, settings.weight_decay)
    by_condition[f"demo, {args.train_iters} it"] = model.ratios(demo, demo_params, kd_settings)
    by_condition[f"paper, {args.train_iters} it"] = model.ratios(paper, loss_params, kd_settings)

    logit_stride = _logit_stride(model, settings.crop or spec.crop)
    share = {
        "demo": band_share(_demo_batches(params, args.share_images // settings.batch_size, settings.batch_size, 3),
                           k, demo_radius, logit_stride, spec.ignore_index),
        "paper": band_share(_paper_batches(args.share_images // 4, 4, 3), k, default.edge_width, logit_stride,
                            spec.ignore_index),
    }
    chosen, inside = choose(by_condition, list(EDGE_NORMS))

    rows = []
    for name in [*(f"edge:{n}" for n in EDGE_NORMS), "body", *CWD_SETTINGS, *kd_settings]:
        rows.append([name, *(f"{r[name]:.2f}" for r in by_condition.values())])
    print(f"\nGradient-norm ratio to the decode CE on the student's parameters; pair {args.pair}, teacher "
          f"{teacher}; loss group: edge {default.edge_weight:g}, body {default.body_weight:g}, alpha "
          f"{default.alpha:g}, radius {default.edge_width} (demo: {demo_radius} px), edge tau {default.edge_tau:g}, "
          f"body tau {default.body_tau:g}; mean of {args.batches} batches (demo: {settings.batch_size}x"
          f"{'x'.join(map(str, settings.crop or spec.crop))} crops of {syn.height}x"
          f"{syn.width} images; paper: {args.paper_batch}x{PAPER_HW[0]}x{PAPER_HW[1]})")
    print(tabulate(rows, headers=["term", *by_condition], tablefmt="github"))
    print(f"\nShare of logit cells (stride {logit_stride}) touched by the band (radius {demo_radius} px on the demo, "
          f"{default.edge_width} px paper-like): demo {share['demo']:.3f}, paper-like {share['paper']:.3f} "
          f"(ratio {share['demo'] / share['paper']:.2f})")
    print(f"Rule: {chosen} ({'inside' if inside else 'NONE inside; nearest:'} the CWD range); "
          f"params.yaml default: {default.edge_norm}")
    first = next(iter(by_condition.values()))
    print(json.dumps({
        "readings": {n: {"edge": round(first[f"edge:{n}"], 3), "body": round(first["body"], 3)} for n in EDGE_NORMS},
        "cwd": round(first["cwd"], 3),
        "band_share": {g: round(s, 4) for g, s in share.items()},
        "default": default.edge_norm,
        "chosen_by_rule": chosen,
        "within_range": inside,
        "by_condition": {c: {n: round(v, 3) for n, v in r.items()} for c, r in by_condition.items()},
    }))
    return 0


def _logit_stride(model: _Pair, crop) -> int:
    """Label size / logit size of the student (4 for HRNet's FCN head, 8 for -d8 nets)."""
    with torch.no_grad():
        model.student.eval()
        model.student._forward(torch.zeros(1, 3, *crop))
        logits = model.rec_s.take(False).logits
    return crop[0] // logits.shape[-2]


if __name__ == "__main__":
    sys.exit(main())
