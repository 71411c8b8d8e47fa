"""Where BPKD's gradient lands: band cells against the rest, logits against backbone.

    python -m bpkd.bench.bpkd_gradients [--teacher PATH] [--students init PATH...] [--batches 4]
    python -m bpkd.bench.bpkd_gradients --dataset camvid --profile camvid [--students ...]

On demo batches (the demo profile's own train pipeline, :mod:`bpkd.bench.loss_scale`)
and against the demo's teacher, or on a prepared real dataset's train frames through its
own pipeline (``--dataset camvid --profile camvid``) and against that dataset's teacher
(``data/models/<dataset>/<pair>/teacher.pth``), for each student state given (``init``: the seed-0
initialisation; a path: a trained student's exported weights, e.g. the baseline's or
BPKD's seed-0 checkpoint), it measures for the decode CE and for BPKD's edge and body
terms at ``params.yaml``'s ``loss`` group (band radius drawn at the data's scale, as
the distill stage draws it):

* at the logits: the share of the term's squared gradient that falls on band cells
  (a cell any class's ``M_E > 0`` touches), and its mean gradient norm per band cell
  and per non-band cell, each relative to the CE's per band cell;
* on the student's parameters: the term's gradient norm relative to the CE's, for the
  backbone and for the decode head separately;
* the teacher's error rate on band pixels and elsewhere (label resolution), i.e. how
  good the targets are where BPKD's edge term concentrates.

Prints a table per state, then one JSON line with every number.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch


def _norm(grads) -> float:
    return math.sqrt(sum(float(g.double().pow(2).sum()) for g in grads if g is not None))


def measure(model, batches: list[dict], loss_params: dict, image_hw: tuple[int, int]) -> dict:
    """Every number of the module docstring for one student state, averaged over batches."""
    from ..distill.band_radius import method_at_image_scale
    from ..distill.losses.bpkd import BPKDLoss
    from ..distill.masks import edge_body_masks, soft_edge_mask

    scaled = method_at_image_scale(BPKDLoss, loss_params, image_hw)
    groups = {"backbone": [p for n, p in model.student.named_parameters() if n.startswith("backbone.")],
              "head": [p for n, p in model.student.named_parameters() if n.startswith("decode_head.")]}
    sums: dict[str, float] = {}

    def add(key: str, value: float) -> None:
        sums[key] = sums.get(key, 0.0) + value / len(batches)

    for data in batches:
        s, t, labels, losses = model.forward(data)
        k = s.logits.shape[1]
        terms = {"ce": losses["decode.loss_ce"]}
        bpkd = BPKDLoss(scaled, num_classes=k, student_channels=0, teacher_channels=0)(s, t, labels)
        terms.update(edge=bpkd["loss_bpkd_edge"], body=bpkd["loss_bpkd_body"])
        with torch.no_grad():
            m_e = soft_edge_mask(labels, k, scaled["edge_width"], s.logits.shape[-2:], 255)
            band = (m_e.amax(dim=1) > 0)  # (N, h, w) logit cells the band touches
        per_cell = {}
        for name, value in terms.items():
            g = torch.autograd.grad(value, s.logits, retain_graph=True)[0]
            cell = g.double().pow(2).sum(dim=1)  # squared gradient norm per logit cell
            per_cell[name] = (float(cell[band].sqrt().mean()), float(cell[~band].sqrt().mean()))
            add(f"{name}:band_share", float(cell[band].sum() / cell.sum()))
            for group, params in groups.items():
                norm = _norm(torch.autograd.grad(value, params, retain_graph=True, allow_unused=True))
                per_cell[f"{name}:{group}"] = norm
        ce_band = per_cell["ce"][0]
        for name in terms:
            add(f"{name}:band_cell_vs_ce_band_cell", per_cell[name][0] / ce_band)
            add(f"{name}:other_cell_vs_ce_band_cell", per_cell[name][1] / ce_band)
            for group in groups:
                add(f"{name}:{group}_vs_ce", per_cell[f"{name}:{group}"] / per_cell[f"ce:{group}"])
        add("band_cell_share", float(band.double().mean()))
        with torch.no_grad():  # the teacher's targets where the band is, at label resolution
            up = torch.nn.functional.interpolate(t.logits, size=labels.shape[-2:], mode="bilinear",
                                                 align_corners=False)
            wrong = (up.argmax(dim=1) != labels) & (labels != 255)
            edge, body = edge_body_masks(labels, scaled["edge_width"], ignore_index=255)
            add("teacher_error:band", float(wrong[edge].double().mean()))
            add("teacher_error:elsewhere", float(wrong[body].double().mean()))
    return sums


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pair", default="hrnet_w48_w18s")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--dataset", default="synthetic",
                    help="synthetic: demo scenes drawn afresh; another: its prepared train split (prepare@<dataset>)")
    ap.add_argument("--profile", default="demo", help="the profile whose crop, batch and band scale are used")
    ap.add_argument("--teacher", help="default: data/models/<dataset>/<pair>/teacher.pth")
    ap.add_argument("--students", nargs="+", default=["init"],
                    help="student states: 'init' or exported student weights (.pth)")
    ap.add_argument("--batches", type=int, default=4)
    args = ap.parse_args(argv)
    from ..cli import quiet_library_noise

    quiet_library_noise()
    import yaml
    from mmengine.registry import DefaultScope
    from tabulate import tabulate

    from ..datasets import specs
    from ..params import Params
    from ..weights import load_into
    from .loss_scale import _demo_batches, _Pair, prepared_batches

    DefaultScope.get_instance("bpkd-bench-bpkd-gradients", scope_name="mmseg")
    tree = yaml.safe_load(open(args.params))
    params = Params(dict(tree, profile=args.profile))
    crop, batch = params.train["student"].crop, params.train["student"].batch_size
    teacher = args.teacher or f"data/models/{args.dataset}/{args.pair}/teacher.pth"
    if args.dataset == "synthetic":
        syn = params.synthetic()
        batches, image_hw = _demo_batches(params, args.batches, batch, seed=0), (syn.height, syn.width)
    else:
        batches = prepared_batches(params, args.dataset, args.batches, batch, seed=0)
        info = json.loads(Path("data/prepared", args.dataset, "dataset.json").read_text())
        # frames prepared at another size record it; as they come, the frame's own
        image_hw = tuple(info.get("image_hw") or batches[0]["data_samples"][0].ori_shape)
    results = {}
    for state in args.students:
        model = _Pair(args.pair, teacher, crop, specs.get(args.dataset).num_classes)
        if state != "init":
            load_into(model.student, state)
        results[state] = measure(model, batches, dict(tree["loss"]), image_hw)
        r = results[state]
        rows = [(name, f"{r[f'{name}:band_share']:.2f}", f"{r[f'{name}:band_cell_vs_ce_band_cell']:.2f}",
                 f"{r[f'{name}:other_cell_vs_ce_band_cell']:.2f}", f"{r[f'{name}:head_vs_ce']:.2f}",
                 f"{r[f'{name}:backbone_vs_ce']:.2f}") for name in ("ce", "edge", "body")]
        print(f"\nstudent: {state}; band cells {100 * r['band_cell_share']:.1f} % of logit cells; teacher error "
              f"{100 * r['teacher_error:band']:.1f} % on band pixels, {100 * r['teacher_error:elsewhere']:.1f} % "
              "elsewhere")
        print(tabulate(rows, headers=["term", "share of |∇logits|² on band cells", "per band cell / CE's",
                                      "per other cell / CE's band cell", "‖∇head‖ / CE's", "‖∇backbone‖ / CE's"],
                       tablefmt="github"))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
