"""What a training run cost, measured by the training stage itself.

Every training stage (teacher, baseline, distillation, same-compute baseline) writes
``metrics/cost/<dataset>/<pair>/[seed<N>/]<model>.json`` beside its weights: the
wall time of the run (Runner built, trained, weights exported), the mean and median
training-step time (mmengine's ``train/time``, which its ``IterTimerHook`` measures
per iteration and our DVCLive backend leaves out of the step log), the steps run,
and the host they ran on. The report divides each row's wall time by the baseline
student's on the same host class (README's cost column).

Timings differ from run to run, so these files are the only outputs that are not
bit-for-bit reproducible: the kill-anywhere check (``bpkd.devtools.chaos``) leaves
them out of its comparison.
"""
from __future__ import annotations

import os
import platform
import statistics

from .cpu_features import cpu_flags, native_bf16


def host_class(flags: set[str] | None = None) -> str:
    """The host class of docs/performance.md: native bf16 (AMX / AVX512-BF16),
    AVX-512 without bf16, AVX2 only, or other."""
    flags = cpu_flags() if flags is None else flags
    native = native_bf16()
    if native:
        return f"native bf16 ({', '.join(native)})"
    if "avx512f" in flags:
        return "AVX-512, no native bf16"
    if "avx2" in flags:
        return "AVX2 only"
    return "no AVX2"


def _cpu_model() -> str:
    try:
        with open(os.environ.get("BPKD_CPUINFO") or "/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host() -> dict:
    """Where this process trains: CPU model and class, torch's threads, the GPU if any."""
    import torch

    info = dict(cpu=_cpu_model(), host_class=host_class(), torch_threads=torch.get_num_threads(),
                processes=int(os.environ.get("WORLD_SIZE", "1")))
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        info["host_class"] = f"GPU: {info['gpu']}"
    return info


def record(step_times: list[float], steps: int, first_iter: int, wall_s: float, precision: str) -> dict:
    """The cost record of a run that trained ``steps`` iterations from ``first_iter``
    (0, or the checkpoint it resumed from) in ``wall_s`` seconds.

    ``step_times``: mmengine's per-iteration times of this run; the first includes
    the one-off warm-up (allocations, oneDNN primitive creation), so the median is
    given beside the mean.
    """
    times = step_times[-steps:] if steps else []
    return dict(
        wall_s=round(wall_s, 2),
        steps=steps,
        first_iter=first_iter,
        mean_step_s=round(statistics.fmean(times), 4) if times else None,
        median_step_s=round(statistics.median(times), 4) if times else None,
        precision=precision,
        **host(),
    )

