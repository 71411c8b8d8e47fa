"""Cost of distillation, measured side by side on one batch.

    python -m bpkd.bench.distill [--pair hrnet_w48_w18s] [--profiles smoke demo] [--repeats 5]

For each method and each size: time of one distillation training step (teacher
forward, student forward/backward, the method's terms, optimiser steps) divided by
the time of a plain student training step plus a teacher forward, all on the same
synthetic batch. The batch size and crop of a size are those of a ``params.yaml``
profile (``--profiles``), or given with ``--size``/``--batch``; the method knobs
are ``params.yaml``'s (each method's group), so the benchmark measures what the
pipeline runs.

Peak memory: each measurement runs in its own fresh process (spawned), so its peak
is its own: peak resident memory (``ru_maxrss``) on CPU, peak allocated CUDA memory
on a GPU. The memory ratio divides a method's peak by the peak of the process that
runs the plain student step and the teacher forward.

Prints one table per size, then as its last line one JSON object mapping each
method to its time ratio per size, e.g. ``{"cwd": {"smoke": 0.97, "demo": 0.96}}``.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import statistics
import time

import numpy as np
import torch

BASELINE = "student+teacher"


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


def timed(fn) -> float:
    """Seconds of one call of ``fn``, the GPU's queue drained before and after."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up (allocator, lazy init)
    return statistics.median(timed(fn) for _ in range(repeats))


def _peak_mib() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _measure(job: dict) -> dict:
    """Run in a fresh process: time one kind of step and report this process's peak."""
    from mmengine.optim import OptimWrapper, OptimWrapperDict
    from mmengine.registry import OPTIMIZERS, DefaultScope

    from ..datasets.synthetic import CLASSES
    from ..distill.distiller import DistillerOptimWrapperConstructor, SegDistiller
    from ..distill.losses import METHODS
    from ..models.build import build_model, model_config
    from ..models.pairs import PAIRS

    torch.set_num_threads(job["threads"])
    DefaultScope.get_instance(f"bpkd-bench-{job['what']}", scope_name="mmseg")
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    pair, size, k = PAIRS[job["pair"]], tuple(job["size"]), len(CLASSES)
    student_cfg = model_config(pair.student, k, size).to_dict()
    teacher_cfg = model_config(pair.teacher, k, size).to_dict()
    data = _batch(job["batch"], *size)
    # One optimiser setting for the plain student and every distiller, so the ratio
    # compares like with like.
    sgd = dict(type="SGD", lr=0.01, momentum=0.9, weight_decay=5e-4)

    def sgd_wrapper(params) -> OptimWrapper:
        return OptimWrapper(OPTIMIZERS.build(dict(sgd, params=list(params))))

    if job["what"] == BASELINE:
        student = build_model(student_cfg).to(device).train()
        teacher = build_model(teacher_cfg).to(device).eval()
        s_opt = sgd_wrapper(student.parameters())

        def teacher_forward():
            with torch.no_grad():
                teacher._forward(student.data_preprocessor(data, True)["inputs"])

        t_student = _median_time(lambda: student.train_step(data, s_opt), job["repeats"])
        t_teacher = _median_time(teacher_forward, job["repeats"])
        return dict(student=t_student, teacher=t_teacher, seconds=t_student + t_teacher, peak_mib=_peak_mib())

    method = job["what"]
    model = SegDistiller(student_cfg, teacher_cfg, None, method, job["method_params"]).to(device).train()
    if METHODS[method].has_discriminator:
        from ..distill.losses.discriminator import optimizer_config

        d_cfg = optimizer_config(model.method.params)
        opt = DistillerOptimWrapperConstructor(dict(
            student=dict(optimizer=sgd), discriminator=dict(optimizer=d_cfg)))(model)
    else:
        opt = OptimWrapperDict(student=sgd_wrapper(p for p in model.parameters() if p.requires_grad))
    seconds = _median_time(lambda: model.train_step(data, opt), job["repeats"])
    return dict(seconds=seconds, peak_mib=_peak_mib())


def _sizes(args) -> dict[str, tuple[int, tuple[int, int]]]:
    """``{label: (batch, (h, w))}`` from ``--size/--batch`` or the params profiles."""
    if args.size:
        return {f"{args.size[0]}x{args.size[1]}": (args.batch, tuple(args.size))}
    import yaml

    from ..params import Params

    tree = yaml.safe_load(open(args.params))
    out = {}
    for profile in args.profiles:
        settings = Params(dict(tree, profile=profile)).train["student"]
        if settings.crop is None:
            raise SystemExit(f"profile {profile!r} has no crop (the dataset's default); pass --size H W")
        out[profile] = (settings.batch_size, settings.crop)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pair", default="hrnet_w48_w18s")
    ap.add_argument("--params", default="params.yaml", help="method knobs and profile sizes")
    ap.add_argument("--profiles", nargs="+", default=["smoke", "demo"],
                    help="params.yaml profiles whose student batch size and crop to measure")
    ap.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="measure this crop instead")
    ap.add_argument("--batch", type=int, default=2, help="batch size with --size")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--methods", nargs="*", help="default: every registered method")
    args = ap.parse_args(argv)
    from ..cli import quiet_library_noise

    quiet_library_noise()  # the OneDL notice and mmcv-lite's MSDA warning, as in every stage

    import yaml
    from tabulate import tabulate

    from ..distill.losses import METHODS, PARAM_GROUPS
    from ..distill.method_config import active_params

    tree = yaml.safe_load(open(args.params))
    methods = args.methods or list(METHODS)
    threads = torch.get_num_threads()
    ctx = mp.get_context("spawn")
    ratios: dict[str, dict[str, float]] = {m: {} for m in methods}
    with ctx.Pool(1, maxtasksperchild=1) as pool:  # one fresh process per measurement
        for label, (batch, size) in _sizes(args).items():
            base_job = dict(pair=args.pair, size=size, batch=batch, repeats=args.repeats, threads=threads)
            base = pool.apply(_measure, (dict(base_job, what=BASELINE),))
            rows = [(BASELINE, f"{base['seconds'] * 1000:.0f}", "1.000", f"{base['peak_mib']:.0f}", "1.00")]
            for method in methods:
                group = PARAM_GROUPS[method]
                _, knobs = active_params(method, dict(tree.get(group) or {}), group)  # the preset that trains
                r = pool.apply(_measure, (dict(base_job, what=method, method_params=knobs),))
                ratios[method][label] = round(r["seconds"] / base["seconds"], 3)
                rows.append((method, f"{r['seconds'] * 1000:.0f}", f"{ratios[method][label]:.3f}",
                             f"{r['peak_mib']:.0f}", f"{r['peak_mib'] / base['peak_mib']:.2f}"))
            print(f"\n{label}: pair {args.pair}, batch {batch}x3x{size[0]}x{size[1]}, {threads} threads, "
                  f"{'cuda' if torch.cuda.is_available() else 'cpu'}; student step {base['student'] * 1000:.0f} ms, "
                  f"teacher forward {base['teacher'] * 1000:.0f} ms")
            print(tabulate(rows, headers=["run", "step (ms)", "time ratio", "peak memory (MiB)", "memory ratio"],
                           tablefmt="github"))
    print(json.dumps(ratios))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
