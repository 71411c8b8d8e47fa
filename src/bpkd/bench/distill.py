"""Cost of distillation, measured side by side on one batch.

    python -m bpkd.bench.distill [--pair hrnet_w48_w18s] [--size 64 128] [--batch 2] [--repeats 5]

For each method: time of one distillation training step (teacher forward, student
forward/backward, the method's terms, optimiser steps) divided by the time of a
plain student training step plus a teacher forward, all on the same synthetic batch
in the same process. Prints a table, then as its last line a JSON object mapping
each method to its ratio.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch


def _batch(n: int, h: int, w: int):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    from ..datasets.synthetic import render_scene

    inputs, samples = [], []
    for i in range(n):
        img, label = render_scene(np.random.default_rng([0, 2, i]), h, w)
        inputs.append(torch.from_numpy(img).permute(2, 0, 1).contiguous())
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.from_numpy(label.astype(np.int64))[None])
        s.set_metainfo(dict(img_shape=(h, w), pad_shape=(h, w), ori_shape=(h, w)))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pair", default="hrnet_w48_w18s")
    ap.add_argument("--size", type=int, nargs=2, default=(64, 128), metavar=("H", "W"))
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--methods", nargs="*", help="default: every registered method")
    args = ap.parse_args(argv)

    from mmengine.optim import OptimWrapper, OptimWrapperDict
    from mmengine.registry import OPTIMIZERS, DefaultScope
    from tabulate import tabulate

    from ..datasets.synthetic import CLASSES
    from ..distill.distiller import DistillerOptimWrapperConstructor, SegDistiller
    from ..distill.losses import METHODS
    from ..models.build import build_model, model_config
    from ..models.pairs import PAIRS

    DefaultScope.get_instance("bpkd-bench", scope_name="mmseg")
    torch.manual_seed(0)
    pair, size, k = PAIRS[args.pair], tuple(args.size), len(CLASSES)
    student_cfg = model_config(pair.student, k, size).to_dict()
    teacher_cfg = model_config(pair.teacher, k, size).to_dict()
    data = _batch(args.batch, *size)
    # One optimiser setting for the plain student and every distiller, so the ratio
    # compares like with like.
    sgd = dict(type="SGD", lr=0.01, momentum=0.9, weight_decay=5e-4)

    def sgd_wrapper(params) -> OptimWrapper:
        return OptimWrapper(OPTIMIZERS.build(dict(sgd, params=list(params))))

    student = build_model(student_cfg).train()
    teacher = build_model(teacher_cfg).eval()
    s_opt = sgd_wrapper(student.parameters())

    def student_step():
        student.train_step(data, s_opt)

    def teacher_forward():
        with torch.no_grad():
            teacher._forward(student.data_preprocessor(data, True)["inputs"])

    t_student = _median_time(student_step, args.repeats)
    t_teacher = _median_time(teacher_forward, args.repeats)
    rows, ratios = [], {}
    for method in args.methods or list(METHODS):
        params = dict(METHODS[method].DEFAULTS)
        if method == "cirkd":  # keep the queue within a laptop's memory at K=10
            params.update(pixel_queue_size=2000, region_queue_size=200)
        model = SegDistiller(student_cfg, teacher_cfg, None, method, params).train()
        if METHODS[method].has_discriminator:
            opt = DistillerOptimWrapperConstructor(dict(
                student=dict(optimizer=sgd), discriminator=dict(optimizer=dict(type="Adam", lr=4e-4))))(model)
        else:
            opt = OptimWrapperDict(student=sgd_wrapper(p for p in model.parameters() if p.requires_grad))
        t = _median_time(lambda: model.train_step(data, opt), args.repeats)
        ratios[method] = round(t / (t_student + t_teacher), 3)
        rows.append((method, f"{t * 1000:.0f}", f"{ratios[method]:.3f}"))
    print(f"pair {args.pair}, batch {args.batch}x3x{size[0]}x{size[1]}, {torch.get_num_threads()} threads; "
          f"student step {t_student * 1000:.0f} ms, teacher forward {t_teacher * 1000:.0f} ms")
    print(tabulate(rows, headers=["method", "distill step (ms)", "ratio"], tablefmt="github"))
    print(json.dumps(ratios))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
