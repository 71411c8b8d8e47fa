"""Shared entry-point plumbing for the thin scripts in ``stages/``."""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import warnings
from typing import Callable

# The x86 instruction-set levels torch's own CPU kernels can be pinned to (its
# ATEN_CPU_CAPABILITY variable); "default" is the plain, unvectorised build.
CPU_CAPABILITIES = ("default", "avx2", "avx512")

def parser(description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(description=description,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def pin_cpu_kernels(params_file: str = "params.yaml") -> str | None:
    """Pin torch's vectorised CPU kernels to ``profiles.<profile>.train.cpu_capability``.

    Torch picks its CPU kernels (softmax, exp, log, reductions) by the host's
    instruction set, and an AVX-512 kernel does not round like an AVX2 one: the same
    distillation stage gave different students on the two (its losses run those
    kernels; the plain cross-entropy path did not differ). Pinning makes the
    result the same on every x86 host that has the pinned level. It must happen
    before torch chooses, i.e. before anything imports it: here, at stage start, from
    the raw params file (validated later with the rest). ``null`` keeps the host's.
    """
    import yaml

    try:
        with open(params_file) as f:
            tree = yaml.safe_load(f) or {}
        value = tree["profiles"][tree["profile"]]["train"].get("cpu_capability")
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return None  # Params.load reports what is missing or wrong, naming the key
    if value in CPU_CAPABILITIES:
        os.environ["ATEN_CPU_CAPABILITY"] = value
        return value
    return None


# What onedl-mmsegmentation prints (``print_log`` with no logger is a bare print, its
# DEBUG level ignored) when its optional OneDL plug-in is absent: once from
# mmseg.datasets, once from mmseg.datasets.transforms.
ONEDL_NOTICE = "Could not import OneDL"
# mmcv-lite's UserWarning at import of mmcv.cnn.bricks.transformer: that op is compiled
# (full mmcv only) and no model here uses it.
MSDA_WARNING = r"Fail to import ``MultiScaleDeformableAttention`` from ``mmcv\.ops\.multi_scale_deform_attn``"


def quiet_library_noise() -> None:
    """Drop the two import-time messages of mmseg/mmcv-lite that concern no user of the
    pipeline, and nothing else: the OneDL notice line, by importing mmseg.datasets (the
    only module printing it) with stdout captured and every other line passed on; the
    MultiScaleDeformableAttention warning, by a filter on its exact message and module."""
    warnings.filterwarnings("ignore", message=MSDA_WARNING, category=UserWarning,
                            module=r"mmcv\.cnn\.bricks\.transformer\Z")
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured):
            import mmseg.datasets  # noqa: F401  (imports mmseg.datasets.transforms too)
    finally:
        sys.stdout.write("".join(line for line in captured.getvalue().splitlines(keepends=True)
                                 if line.rstrip("\n") != ONEDL_NOTICE))


def run(main: Callable[[], None]) -> None:
    """Run a stage; a known user error prints one clear line and exits 2 (no traceback)."""
    from .errors import UserError

    pin_cpu_kernels()  # before torch loads: quiet_library_noise imports it
    quiet_library_noise()
    try:
        main()
    except (UserError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
