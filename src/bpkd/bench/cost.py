"""What one row of the paper's tables costs to train: step time, peak memory, GPU-hours.

    python -m bpkd.bench.cost [--geometry cityscapes|ade20k|pascal_context59|tiny]
                              [--pairs hrnet_w48_w18s ...] [--device cuda|cpu]
                              [--repeats 5] [--warmup 2] [--layout NCHW|NHWC]

    make cost                                      # Cityscapes, params.yaml's pairs
    make cost ARGS="--geometry ade20k --pairs hrnet_w48_w18s pspnet_r101_r18"

For each pair (params.yaml's ``pairs``, or ``--pairs``) and each row of the BPKD paper's
tables (Liu et al., arXiv 2306.08075: teacher, the student trained alone, SKDS, IFVD,
CIRKD, CWD, BPKD), one training step is timed at the paper's geometry of a dataset and
its per-GPU batch, 2 images (mmseg's ``4xb2-80k`` configs the paper trains with):

- ``cityscapes``: 512x1024 crops, 19 classes; ``ade20k``: 512x512, 150 classes;
  ``pascal_context59``: 480x480, 59 classes (the crops and class counts of
  ``bpkd.datasets.specs``); ``tiny``: 32x64, 10 classes, for the tests.
- The steps are ``bpkd.bench.speed``'s: the teacher's and the student's ``train_step``
  (SGD at mmseg's lr 0.01, momentum 0.9, weight decay 5e-4) and
  ``SegDistiller.train_step`` (teacher forward, student forward and backward, the
  method's terms, the discriminator step of SKDS and IFVD), with ``params.yaml``'s
  method knobs (each method's group, its training preset). The batch is two synthetic
  street scenes at the crop size (``bpkd.datasets.synthetic``: 10 classes of labels
  whatever the head's class count). Weights are random (no ImageNet backbone, no
  teacher checkpoint): the time and memory of a step do not depend on their values.
- Precisions: fp32, and the fastest mixed precision the device has, applied as the
  pipeline applies ``train.amp`` (``bpkd.training.amp.optim_wrapper_config``): on CUDA
  bf16 (mmengine's ``AmpOptimWrapper``, no loss scaling) where
  ``torch.cuda.is_bf16_supported()``, else fp16 with its dynamic loss scaler; on CPU
  bf16 (``CPUBF16AmpOptimWrapper``) only where the CPU computes bfloat16 natively
  (``bpkd.training.cpu_features``), else none ("no AMP on this CPU").
- Step time: the median of ``--repeats`` timed steps (5; 3 on ``tiny``) after
  ``--warmup`` untimed ones (2; 1 on ``tiny``), the GPU's queue drained before and
  after each (``bpkd.bench.distill.timed``).
- Peak memory, in GiB (2**30 bytes). On CUDA, ``torch.cuda.max_memory_allocated``
  after ``reset_peak_memory_stats`` at the start of the row, minus what was still
  allocated then: the row's tensors (weights, gradients, optimiser state,
  activations), not the CUDA context or the allocator's cache. The rows of one pair
  run one after another in one spawned process, each row's model freed before the
  next. On CPU, where a process's peak cannot be reset, every row (and precision) runs
  in its own fresh spawned process and the peak is that process's own peak resident
  set (Linux's ``VmHWM``; not ``ru_maxrss``, which in a spawned child also counts the
  parent's, :func:`own_peak_rss`): it includes the interpreter and the libraries,
  whose share (the peak before the model is built) is printed under the table.

Derived, from each row's median step time ``step_ms``:

- ``gpu_hours_80k = step_ms * 80000 / 3.6e6``: one 80k-iteration run (the paper's
  schedule) at 2 images per step on one GPU, in hours, the same as GPU-hours.
- The paper's setting, 4 GPUs at 2 images each (8 in all) for the same 80k
  iterations: every GPU runs the one-GPU step, so the wall time is ``gpu_hours_80k``
  and the GPU-hours are ``4 * gpu_hours_80k``. Assumed: DDP's gradient all-reduce and
  SyncBN's statistics exchange cost nothing (they do not: read these as lower bounds).
- ``totals``, per precision: the table's trained runs, i.e. baseline + 5 methods for
  each pair (6 runs per pair; the teacher is downloaded, not trained, so its row is
  shown and left out), each summed the same three ways.

Prints a header, the table in markdown, the totals, and as its last line one JSON
object: ``{"device": ..., "geometry": ..., "rows": [{"pair", "model", "precision",
"step_ms", "peak_mem_gib", "gpu_hours_80k"}, ...], "totals": {precision: {"runs",
"gpu_hours_1gpu", "wall_hours_4gpu", "gpu_hours_4gpu"}}}``. A row that ran out of GPU
memory has ``null`` time, memory and hours and makes its precision's totals ``null``.
"""
from __future__ import annotations

import argparse
import gc
import json
import multiprocessing as mp
import resource
import statistics
import sys
from dataclasses import dataclass

from ..models.pairs import PAIRS

MODELS = ("teacher", "baseline", "skds", "ifvd", "cirkd", "cwd", "bpkd")
TRAINED = MODELS[1:]  # the teacher is the paper's released checkpoint: downloaded, not trained
BATCH_PER_GPU = 2  # mmseg's 4xb2 configs (the paper's 4 GPUs x 2 images)
ITERS = 80_000  # the paper's schedule (mmseg's schedule_80k)
PAPER_GPUS = 4
GIB = 2**30


@dataclass(frozen=True)
class Geometry:
    crop: tuple[int, int]  # (h, w)
    num_classes: int


def _geometries() -> dict[str, Geometry]:
    from ..datasets.specs import DATASETS

    out = {name: Geometry(DATASETS[name].crop, DATASETS[name].num_classes)
           for name in ("cityscapes", "ade20k", "pascal_context59")}
    out["tiny"] = Geometry((32, 64), 10)  # every pair's output stride (8 or 32) still leaves cells
    return out


GEOMETRIES = _geometries()


def gpu_hours_80k(step_ms: float) -> float:
    """Hours of one 80k-iteration run on one GPU at ``step_ms`` per iteration."""
    return step_ms * ITERS / 3.6e6


def _step(model: str) -> str:
    """``bpkd.bench.speed``'s name of the step that trains ``model``."""
    return "student" if model == "baseline" else model


# ---------------------------------------------------------------------------------
# Child process.


def _peak_bytes(device: str) -> int:
    """The peak so far: CUDA's allocated bytes, or this process's own peak resident set."""
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated()
    return own_peak_rss()


def own_peak_rss() -> int:
    """Peak resident set of this process's own address space, in bytes: Linux's
    ``VmHWM``. Not ``ru_maxrss``: in a spawned (fork + exec) child it also holds the
    parent's resident set at the fork (measured: 835 MB in a child whose own peak was
    16 MB, the parent holding 800 MB); elsewhere it is the fallback."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _measure(jobs: list[dict]) -> list[dict]:
    """In a fresh spawned process: time each job's step (``bpkd.bench.speed._prepare``
    builds it) and read its peak memory. On CPU the parent sends one job per process."""
    import warnings

    from ..cli import quiet_library_noise

    quiet_library_noise()
    # mmseg's note on every head built: the pipeline keeps the paper's avg_non_ignore=False.
    warnings.filterwarnings("ignore", message="Default ``avg_non_ignore`` is False", category=UserWarning)
    import torch
    from mmseg.utils import register_all_modules

    from ..distill import distiller  # noqa: F401  (what every row imports, before the baseline RSS)
    from .distill import timed
    from .speed import _prepare

    register_all_modules(init_default_scope=False)
    out = []
    for job in jobs:
        device = job["device"]
        if device == "cuda":
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            start = torch.cuda.memory_allocated()
        else:
            start = 0
        rss_before_build = own_peak_rss()
        try:
            fn = _prepare(job)
            for _ in range(job["warmup"]):
                timed(fn)
            times = [timed(fn) for _ in range(job["repeats"])]
            peak = _peak_bytes(device) - start
            out.append(dict(step_ms=statistics.median(times) * 1000, peak_bytes=peak,
                            rss_before_build=rss_before_build))
            said = f"{out[-1]['step_ms']:.1f} ms, {peak / GIB:.3f} GiB"
        except torch.cuda.OutOfMemoryError:
            out.append(dict(step_ms=None, peak_bytes=None, rss_before_build=rss_before_build))
            said = "out of memory"
        # A row's result as soon as it is measured: a run cut short still says what it had.
        print(f"  {job['pair']}/{job['model']}/{job['precision']}: {said}", file=sys.stderr, flush=True)
        fn = None  # frees the row's model, optimiser and batch before the next row
    return out


# ---------------------------------------------------------------------------------
# Parent.


def _precisions(device: str) -> tuple[list[str], str | None]:
    """fp32 and the fastest mixed precision of ``device``; the note when there is none."""
    import torch

    from ..training.amp import precision_on_this_host

    if device == "cuda":
        return ["fp32", "bf16" if torch.cuda.is_bf16_supported() else "fp16"], None
    amp, why = precision_on_this_host("bf16", False, "bf16")
    if amp == "bf16":
        return ["fp32", "bf16"], None
    return ["fp32"], f"no AMP on this CPU: {why.removeprefix('bf16 = ')}"


def _round(x, digits):
    return None if x is None else round(x, digits)


def totals_of(rows: list[dict], pairs: list[str], precisions: list[str]) -> dict:
    """Per precision: the trained runs of the table (baseline + 5 methods per pair) and
    their hours, one GPU and the paper's 4 GPUs (``None`` if a run did not fit)."""
    out = {}
    for precision in precisions:
        hours = [r["gpu_hours_80k"] for r in rows if r["precision"] == precision and r["model"] in TRAINED]
        total = None if None in hours else round(sum(hours), 4)
        out[precision] = dict(runs=len(TRAINED) * len(pairs), gpu_hours_1gpu=total, wall_hours_4gpu=total,
                              gpu_hours_4gpu=_round(None if total is None else PAPER_GPUS * total, 4))
    return out


def _cell(x, fmt: str) -> str:
    return "out of memory" if x is None else format(x, fmt)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--geometry", default="cityscapes", choices=list(GEOMETRIES),
                    help="the dataset whose crop and class count to train at (default: cityscapes)")
    ap.add_argument("--pairs", nargs="+", choices=sorted(PAIRS), metavar="PAIR",
                    help=f"default: params.yaml's pairs; any of {' '.join(sorted(PAIRS))}")
    ap.add_argument("--device", choices=["cuda", "cpu"], help="default: cuda if available, else cpu")
    ap.add_argument("--params", default="params.yaml", help="pairs, method knobs, cpu_capability of the profile")
    ap.add_argument("--repeats", type=int, help="timed steps per row, after the warm-up (default 5; tiny: 3)")
    ap.add_argument("--warmup", type=int, help="untimed steps first: allocator, cuDNN, lazy init (default 2; tiny: 1)")
    ap.add_argument("--layout", choices=["NCHW", "NHWC"], default="NCHW",
                    help="memory format (NCHW: the paper profile's contiguous; NHWC: channels_last)")
    args = ap.parse_args(argv)
    tiny = args.geometry == "tiny"  # the tests' geometry: fewer steps, so that it runs in under a minute
    args.repeats = (3 if tiny else 5) if args.repeats is None else args.repeats
    args.warmup = (1 if tiny else 2) if args.warmup is None else args.warmup
    if args.repeats < 1 or args.warmup < 0:
        ap.error("--repeats must be >= 1 and --warmup >= 0")

    from ..cli import pin_cpu_kernels, quiet_library_noise

    pin_cpu_kernels(args.params)  # before torch loads; the spawned children inherit it
    quiet_library_noise()
    import torch
    import yaml
    from tabulate import tabulate

    from ..distill.losses import METHODS, PARAM_GROUPS
    from ..distill.method_config import active_params
    from ..params import Params
    from .speed import _cpuinfo_field, host_line

    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: torch sees no CUDA device here (torch.cuda.is_available() is False)")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    tree = yaml.safe_load(open(args.params))
    pairs = args.pairs or Params(tree).pairs
    geometry = GEOMETRIES[args.geometry]
    precisions, no_amp = _precisions(device)
    method_params = {}
    for method in MODELS[2:]:
        group = PARAM_GROUPS[method]
        method_params[method] = active_params(method, dict(tree.get(group) or {}), group)[1]
    assert set(MODELS[2:]) == set(METHODS), "bench.cost's rows must be the registered methods"

    threads = torch.get_num_threads()
    h, w = geometry.crop
    print(host_line(threads), flush=True)
    print(f"geometry {args.geometry}: {BATCH_PER_GPU}x3x{h}x{w} per step, {geometry.num_classes} classes; "
          f"device {device}; {args.warmup} warm-up + {args.repeats} timed steps per row; "
          f"{args.layout}; precisions: {', '.join(precisions)}", flush=True)
    if no_amp:
        print(f"note: {no_amp}", flush=True)

    base = dict(crop=geometry.crop, num_classes=geometry.num_classes, batch=BATCH_PER_GPU, device=device,
                threads=threads, repeats=args.repeats, warmup=args.warmup, amp_key="profiles.paper.train.amp")
    keys, jobs = [], []
    for pair in pairs:
        for model in MODELS:
            for precision in precisions:
                keys.append((pair, model, precision))
                jobs.append(dict(base, pair=pair, model=model, precision=precision, step=_step(model),
                                 setting=f"{precision} {args.layout} eager", method_params=method_params.get(model)))
    # CUDA: one process per pair, each row's peak reset; CPU: one process per row (RSS
    # has no reset).
    per_process = len(MODELS) * len(precisions) if device == "cuda" else 1
    batches = [jobs[i:i + per_process] for i in range(0, len(jobs), per_process)]
    measured = []
    ctx = mp.get_context("spawn")
    with ctx.Pool(1, maxtasksperchild=1) as pool:
        for batch in batches:
            measured += pool.apply(_measure, (batch,))

    rows = []
    for (pair, model, precision), m in zip(keys, measured):
        step_ms = _round(m["step_ms"], 1)
        rows.append(dict(pair=pair, model=model, precision=precision, step_ms=step_ms,
                         peak_mem_gib=_round(None if m["peak_bytes"] is None else m["peak_bytes"] / GIB, 3),
                         gpu_hours_80k=_round(None if step_ms is None else gpu_hours_80k(step_ms), 4)))
    totals = totals_of(rows, pairs, precisions)

    table = []
    for r in rows:
        hours = r["gpu_hours_80k"]
        table.append([r["pair"], r["model"] + (" (downloaded, not in the totals)" if r["model"] == "teacher" else ""),
                      r["precision"], _cell(r["step_ms"], ".1f"), _cell(r["peak_mem_gib"], ".3f"),
                      _cell(hours, ".2f"), _cell(hours, ".2f"),
                      _cell(None if hours is None else PAPER_GPUS * hours, ".2f")])
    print()
    print(tabulate(table, headers=["pair", "model", "precision", "step (ms)", "peak memory (GiB)",
                                   "80k iters, 1 GPU (GPU-h)", "paper, 4 GPUs: wall h", "paper, 4 GPUs: GPU-h"],
                   tablefmt="github", disable_numparse=True))
    if device == "cpu":
        base_rss = min(m["rss_before_build"] for m in measured) / GIB
        print(f"\npeak memory on CPU: each row's process's own peak resident set, of which about {base_rss:.2f} GiB "
              f"is the interpreter and libraries (its peak before the model was built)")
    print(f"\ntotals of the table ({len(TRAINED)} trained runs per pair x {len(pairs)} pair(s); teacher excluded; "
          f"4 GPUs: DDP overhead ignored):")
    print(tabulate([[p, t["runs"], _cell(t["gpu_hours_1gpu"], ".2f"), _cell(t["wall_hours_4gpu"], ".2f"),
                     _cell(t["gpu_hours_4gpu"], ".2f")] for p, t in totals.items()],
                   headers=["precision", "runs", "1 GPU: GPU-h", "paper, 4 GPUs: wall h", "paper, 4 GPUs: GPU-h"],
                   tablefmt="github", disable_numparse=True))
    name = torch.cuda.get_device_name() if device == "cuda" else f"cpu ({_cpuinfo_field('model name') or 'unknown'})"
    print(json.dumps(dict(device=name,
                          geometry=args.geometry, rows=rows, totals=totals)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
