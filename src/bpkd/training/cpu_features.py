"""Does this CPU compute bfloat16 natively? Read from the kernel's CPU flags.

bf16 autocast on a CPU pays only where oneDNN has native bfloat16 instructions:
AVX512-BF16 (``avx512_bf16``: Cooper Lake, Sapphire Rapids, AMD Zen 4 and later) or
AMX (``amx_bf16``: Sapphire Rapids and later). Elsewhere oneDNN emulates bf16 with
fp32 arithmetic plus conversions, which is slower than fp32 itself, so
``train.amp: bf16`` falls back to fp32 there (bpkd.training.amp).

What is read: the ``flags`` line of ``/proc/cpuinfo``, or the file named by
``BPKD_CPUINFO`` (tests point it at a hand-written file to check both answers).
"""
from __future__ import annotations

import os
from pathlib import Path

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
CPUINFO_ENV = "BPKD_CPUINFO"


def cpu_flags(path: str | Path | None = None) -> set[str]:
    """The CPU flags of the first ``flags`` line (x86 Linux); empty where there is none."""
    path = Path(path or os.environ.get(CPUINFO_ENV) or "/proc/cpuinfo")
    try:
        text = path.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def native_bf16(path: str | Path | None = None) -> list[str]:
    """The native bfloat16 flags this CPU has (empty: none, bf16 would be emulated)."""
    flags = cpu_flags(path)
    return [f for f in NATIVE_BF16_FLAGS if f in flags]
