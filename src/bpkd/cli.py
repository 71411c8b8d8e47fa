"""Shared entry-point plumbing for the thin scripts in ``stages/``."""
from __future__ import annotations

import argparse
import os
import sys
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


def run(main: Callable[[], None]) -> None:
    """Run a stage; a known user error prints one clear line and exits 2 (no traceback)."""
    from .errors import UserError

    pin_cpu_kernels()
    try:
        main()
    except (UserError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
