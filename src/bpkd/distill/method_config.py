"""Resolve and validate a method's params group (the ``method@<method>`` stage)."""
from __future__ import annotations

from pathlib import Path

from ..atomic import write_json
from ..params import Params, ParamsError


def resolve(params: Params, method: str, out: str | Path) -> dict:
    from .losses import METHODS, PARAM_GROUPS, build_method

    if method not in METHODS:
        raise ParamsError(f"unknown distillation method {method!r}; expected one of {sorted(METHODS)}")
    group = PARAM_GROUPS[method]
    raw = params.group(group)
    try:
        # Building the method with tiny dimensions runs its own validation cheaply.
        build_method(method, raw, num_classes=2, student_channels=4, teacher_channels=4)
    except ValueError as e:
        raise ParamsError(str(e)) from e
    resolved = dict(METHODS[method].DEFAULTS, **raw)
    write_json(out, {"method": method, "group": group, "params": resolved})
    return resolved
