"""Shared entry-point plumbing for the thin scripts in ``stages/``."""
from __future__ import annotations

import argparse
import contextlib
import importlib.abc
import importlib.util
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


class _QuietOneDLImport(importlib.abc.MetaPathFinder):
    """Imports ``mmseg.datasets`` (the only module printing the OneDL notice; it imports
    mmseg.datasets.transforms, the second one) with stdout captured, and passes every
    captured line on except that notice. A finder, so that a stage that never imports
    mmseg pays nothing."""

    def find_spec(self, name, path, target=None):
        if name != "mmseg.datasets":
            return None
        sys.meta_path.remove(self)  # once, and without finding itself again
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        run_module = spec.loader.exec_module

        def exec_module(module):
            captured = io.StringIO()
            try:
                with contextlib.redirect_stdout(captured):
                    run_module(module)
            finally:
                sys.stdout.write("".join(line for line in captured.getvalue().splitlines(keepends=True)
                                         if line.rstrip("\n") != ONEDL_NOTICE))

        spec.loader.exec_module = exec_module
        return spec


def quiet_library_noise() -> None:
    """Drop the two import-time messages of mmseg/mmcv-lite that concern no user of the
    pipeline, and nothing else: the OneDL notice line (:class:`_QuietOneDLImport`) and
    the MultiScaleDeformableAttention warning, by a filter on its exact message and module."""
    warnings.filterwarnings("ignore", message=MSDA_WARNING, category=UserWarning,
                            module=r"mmcv\.cnn\.bricks\.transformer\Z")
    if "mmseg.datasets" not in sys.modules and not any(isinstance(f, _QuietOneDLImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietOneDLImport())


def run(main: Callable[[], None]) -> None:
    """Run a stage; a known user error prints one clear line and exits 2 (no traceback)."""
    from .errors import UserError

    from .vml_warmup import warm_up_vml_when_torch_loads

    pin_cpu_kernels()  # before torch loads
    warm_up_vml_when_torch_loads()  # its first parallel exp/log/tanh can be wrong otherwise
    quiet_library_noise()
    try:
        main()
    except (UserError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
