"""How much of the baseline's seed spread the validation set's size explains: a
per-image bootstrap of each checkpoint's mIoU.

    python -m bpkd.bench.eval_bootstrap [--seeds 0 1 2 3 4 5 6 7] [--resamples 1000]

Each baseline checkpoint (``data/models/<dataset>/<pair>/seed<N>/baseline.pth``) is
evaluated as ``evaluate@`` evaluates it (mmseg's test loop, the same metric), keeping
each validation image's per-class intersection and union. The bootstrap draws the
images with replacement (``--resamples`` times, one seeded generator) and computes
mIoU as the metric does, from the summed areas of the drawn images (a class no drawn
image has does not count). Its standard deviation is the checkpoint's standard error
from the validation set alone: what a second set of as many images would move its
score by. docs/noise-and-cost.md states the rule it decides: if the median standard
error over the checkpoints is at least half the baseline's seed std, the validation
set is the main amplifier. Prints a table, then one JSON line.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np

# The areas of every image, kept by the metric below (this process only).
_PER_IMAGE: list[list] = []


def _keep_per_image_areas() -> None:
    """Register, in this process only, a RegionIoUMetric that also keeps each image's
    (intersection, union) per class before the summary: evaluate() builds the metric
    by that name, and the evaluation code (a dependency of the evaluate stages) stays
    as it is."""
    from mmseg.registry import METRICS

    from ..evaluation.region_metric import RegionIoUMetric

    class KeepingRegionIoUMetric(RegionIoUMetric):
        def compute_metrics(self, results: list) -> dict:
            _PER_IMAGE.append([(np.asarray(r[0], dtype=np.float64), np.asarray(r[1], dtype=np.float64))
                               for r in results])
            return super().compute_metrics(results)

    METRICS.register_module(name="RegionIoUMetric", module=KeepingRegionIoUMetric, force=True)


def miou(intersect: np.ndarray, union: np.ndarray) -> np.ndarray:
    """mIoU (%) of summed areas, ``[..., class]``; classes with no union do not count."""
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = intersect / union
    return np.nanmean(np.where(union > 0, iou, np.nan), axis=-1) * 100


def bootstrap(intersect: np.ndarray, union: np.ndarray, resamples: int, seed: int = 0) -> np.ndarray:
    """mIoU of ``resamples`` draws of the images (rows of ``[image, class]``) with replacement."""
    rng = np.random.default_rng(seed)
    n = intersect.shape[0]
    draws = rng.integers(0, n, size=(resamples, n))
    counts = np.stack([np.bincount(d, minlength=n) for d in draws]).astype(np.float64)  # [resample, image]
    return miou(counts @ intersect, counts @ union)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="synthetic")
    ap.add_argument("--pair", default="hrnet_w48_w18s")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(8)))
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--models", default="data/models", help="folder of the trained checkpoints")
    args = ap.parse_args(argv)

    from .. import params
    from ..datasets import specs
    from ..evaluation.evaluate import evaluate
    from ..models.pairs import arch_of
    from ..training.run import prepared_info

    p = params.load()
    _keep_per_image_areas()
    data_root = f"data/prepared/{args.dataset}"
    info = prepared_info(data_root)
    arch = arch_of(args.pair, "student")
    rows = []
    for seed in args.seeds:
        checkpoint = Path(args.models, args.dataset, args.pair, f"seed{seed}", "baseline.pth")
        if not checkpoint.is_file():
            raise SystemExit(f"{checkpoint}: no such checkpoint; expected the baseline of seed {seed} "
                             f"(dvc repro evaluate_baseline@{args.dataset}-{args.pair}-{seed})")
        _PER_IMAGE.clear()
        summary, _ = evaluate(dataset=args.dataset, arch=arch, checkpoint=str(checkpoint), data_root=data_root,
                              image_hw=tuple(info["image_hw"]) if info.get("image_hw") else None,
                              crop=p.train["student"].crop)
        intersect = np.stack([i for i, _ in _PER_IMAGE[0]])
        union = np.stack([u for _, u in _PER_IMAGE[0]])
        point = float(miou(intersect.sum(0), union.sum(0)))
        draws = bootstrap(intersect, union, args.resamples, seed=seed)
        rows.append(dict(seed=seed, mIoU=summary["mIoU"], recomputed=round(point, 2), images=int(intersect.shape[0]),
                         bootstrap_se=round(float(draws.std(ddof=1)), 3)))
        print(f"seed {seed}: mIoU {summary['mIoU']:.2f} (recomputed {point:.2f}), {intersect.shape[0]} images, "
              f"bootstrap SE {rows[-1]['bootstrap_se']:.3f}", flush=True)
    mious = [r["mIoU"] for r in rows]
    sigma = statistics.stdev(mious) if len(mious) > 1 else float("nan")
    median_se = statistics.median(r["bootstrap_se"] for r in rows)
    print(f"\nseed std of mIoU over {len(rows)} seeds: {sigma:.2f}; median bootstrap SE: {median_se:.2f} "
          f"({median_se / sigma:.2f} of the std); the rule's threshold: SE >= std / 2 = {sigma / 2:.2f}: "
          + ("the validation set is the main amplifier" if median_se >= sigma / 2 else
             "below it: the spread is the training's own"))
    print(json.dumps(dict(dataset=args.dataset, pair=args.pair, resamples=args.resamples, seed_std=round(sigma, 3),
                          median_bootstrap_se=median_se, validation_set_amplifies=median_se >= sigma / 2,
                          runs=rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
