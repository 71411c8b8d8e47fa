"""Resolve oneMKL's VML kernel dispatch once, single-threaded, before any op runs in parallel.

torch routes contiguous float unary ops (``exp``, ``log``, ``tanh``, ``sqrt``, ...) to MKL
VML, each intra-op thread calling it on its own chunk. oneMKL 2024.2 (the one bundled in
the pinned torch 2.13.0 wheel: ``torch.__config__.show()``) picks each VML function's
kernel lazily at its first call, and when that first call happens on two threads at
once one of them can run a low-accuracy kernel for its whole chunk of that one call
(pytorch/pytorch#188792, fix proposed in #188791; gone from oneMKL 2025.0).

Measured here (2 threads, Intel Xeon with avx512_bf16): the first ``x.exp()`` of a fresh
process on 10,240 floats differed from the second on 5,108 elements in 5 of 30
processes (relative error up to 5e-5 instead of < 1 ulp); ``log`` 3 of 12, ``tanh`` 1 of
12. The SKDS stage's first pixel-wise KD term hit it in about half its runs, so the
same stage gave three different students. One serial call of each function per
precision on a one-element tensor resolves the dispatch for the whole process.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import sys

# The unary ops ATen sends to MKL VML (aten/src/ATen/cpu/vml.h, IMPLEMENT_VML_MKL), by
# torch name; VML has float and double kernels only, so bf16/fp16 never reach it.
VML_OPS = ("abs", "acos", "asin", "atan", "cos", "erf", "erfc", "exp", "expm1", "log", "log10", "log1p",
           "log2", "sin", "sqrt", "tan", "tanh", "trunc")


def warm_up_vml() -> None:
    """Call every VML-backed op once per precision on one element (below any parallel
    grain, so on this thread alone), so no later parallel call is a first call."""
    import torch

    for dtype in (torch.float32, torch.float64):
        x = torch.full((1,), 0.5, dtype=dtype)
        for name in VML_OPS:
            getattr(torch, name)(x)


class _WarmUpAfterTorchImport(importlib.abc.MetaPathFinder):
    """Runs :func:`warm_up_vml` right after ``torch`` finishes importing, so every stage
    process that uses torch (and only those) is covered, whoever imports it first."""

    def find_spec(self, name, path, target=None):
        if name != "torch":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        run_module = spec.loader.exec_module

        def exec_module(module):
            run_module(module)
            warm_up_vml()

        spec.loader.exec_module = exec_module
        return spec


def warm_up_vml_when_torch_loads() -> None:
    """At stage start: warm up now if torch is already loaded, else right after it loads."""
    if "torch" in sys.modules:
        warm_up_vml()
    elif not any(isinstance(f, _WarmUpAfterTorchImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _WarmUpAfterTorchImport())
