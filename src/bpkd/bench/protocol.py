"""Where a model is scored against where it is used: mIoU on the training crops
against whole-image and sliding-window validation.

    python -m bpkd.bench.protocol --checkpoint data/models/synthetic/hrnet_w48_w18s/teacher.pth --arch hrnet_w48
        [--dataset synthetic] [--crops 300] [--seed 0]

A teacher is *used* on the student's training batches: crops drawn by the train
pipeline (``RandomResize`` 0.5-2, ``RandomCrop``, flip, photometric distortion), and
its logits on those crops are what a distiller transfers. It is *validated* on whole
images, or by sliding windows of the crop (mmseg's ``slide`` test mode). This bench
scores one checkpoint all three ways, with mmseg's own ``IoUMetric`` arithmetic
(``intersect_and_union`` and ``total_area_to_metrics``):

- ``train crops``: one crop per training image (``--crops`` of them, in order, the
  pipeline's randomness seeded), each predicted at its own size, as in training;
- ``val whole``: the validation images whole (the ``whole`` test mode);
- ``val slide``: the same images by windows of the training crop, stride 2/3 of it.

The two validation rows are :func:`bpkd.evaluation.evaluate.evaluate` with the
dataset's test mode overridden. Prints a table and, as its last line, one JSON object
``{"train_crops": {...}, "val_whole": {...}, "val_slide": {...}}`` with mIoU, mAcc and
aAcc in %.
"""
from __future__ import annotations

import argparse
import dataclasses
import json


def crop_scores(*, dataset: str, arch: str, checkpoint: str, data_root: str, crop, scale, crops: int,
                seed: int) -> dict:
    """mIoU/mAcc/aAcc (%) of ``checkpoint`` on ``crops`` training crops of the train pipeline."""
    import numpy as np
    import torch
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DefaultScope
    from mmseg.evaluation.metrics import IoUMetric
    from mmseg.registry import DATASETS

    from ..datasets import mmseg_dataset  # noqa: F401  (registers the synthetic dataset)
    from ..datasets import specs
    from ..models.build import build_model, model_config
    from ..training.config import dataset_config, train_pipeline
    from ..weights import load_into

    DefaultScope.get_instance("bpkd-protocol", scope_name="mmseg")
    spec = specs.get(dataset)
    model = build_model(model_config(arch, spec.num_classes, crop, ignore_index=spec.ignore_index)).eval()
    load_into(model, checkpoint)
    data = DATASETS.build(dataset_config(spec, data_root, "train", train_pipeline(spec, crop, scale)))
    np.random.seed(seed)  # the pipeline's transforms draw from numpy's and Python's generators
    import random

    random.seed(seed)
    k = spec.num_classes
    areas = [torch.zeros(k, dtype=torch.float64) for _ in range(4)]
    with torch.no_grad():
        for start in range(0, min(crops, len(data)), 4):
            batch = pseudo_collate([data[i] for i in range(start, min(start + 4, crops, len(data)))])
            inputs = model.data_preprocessor(batch, False)
            logits = model.encode_decode(inputs["inputs"], [s.metainfo for s in inputs["data_samples"]])
            for pred, sample in zip(logits.argmax(1), inputs["data_samples"]):
                label = sample.gt_sem_seg.data.squeeze(0)
                for total, part in zip(areas, IoUMetric.intersect_and_union(pred, label, k, spec.ignore_index)):
                    total += part.double()
    metrics = IoUMetric.total_area_to_metrics(*areas, metrics=["mIoU"])
    return dict(mIoU=round(float(np.nanmean(metrics["IoU"])) * 100, 2),
                mAcc=round(float(np.nanmean(metrics["Acc"])) * 100, 2),
                aAcc=round(float(metrics["aAcc"]) * 100, 2))


def val_scores(*, dataset: str, arch: str, checkpoint: str, data_root: str, image_hw, crop, mode: str) -> dict:
    from ..datasets import specs
    from ..evaluation.evaluate import evaluate

    spec = specs.get(dataset)
    saved = specs.DATASETS[dataset]
    specs.DATASETS[dataset] = dataclasses.replace(spec, test_mode=mode)
    try:
        summary, _ = evaluate(dataset=dataset, arch=arch, checkpoint=checkpoint, data_root=data_root,
                              image_hw=image_hw, crop=crop)
    finally:
        specs.DATASETS[dataset] = saved
    return {k: summary[k] for k in ("mIoU", "mAcc", "aAcc")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--arch", required=True, help="e.g. hrnet_w48 (teacher) or hrnet_w18s (student)")
    ap.add_argument("--dataset", default="synthetic")
    ap.add_argument("--params", default="params.yaml", help="the crop of the active profile")
    ap.add_argument("--crops", type=int, default=300, help="training crops to score (one per image, in order)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from ..cli import pin_cpu_kernels, quiet_library_noise

    pin_cpu_kernels(args.params)
    quiet_library_noise()
    from tabulate import tabulate

    from .. import params as params_mod
    from ..datasets import specs
    from ..training.config import data_scale
    from ..training.run import prepared_info

    p = params_mod.load(args.params)
    spec = specs.get(args.dataset)
    data_root = f"data/prepared/{args.dataset}"
    info = prepared_info(data_root)
    image_hw = tuple(info["image_hw"]) if args.dataset == "synthetic" and info.get("image_hw") else None
    crop = p.train["student"].crop or spec.crop
    common = dict(dataset=args.dataset, arch=args.arch, checkpoint=args.checkpoint, data_root=data_root)
    out = dict(train_crops=crop_scores(**common, crop=crop, scale=data_scale(spec, image_hw), crops=args.crops,
                                       seed=args.seed),
               val_whole=val_scores(**common, image_hw=image_hw, crop=crop, mode="whole"),
               val_slide=val_scores(**common, image_hw=image_hw, crop=crop, mode="slide"))
    print(tabulate([(k.replace("_", " "), v["mIoU"], v["mAcc"], v["aAcc"]) for k, v in out.items()],
                   headers=["scored on", "mIoU", "mAcc", "aAcc"], tablefmt="github"))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
