"""Resolve and validate a method's params group (the ``method@<method>`` stage).

Methods with settings presets (SKDS and IFVD: ``PRESETS`` of the loss class, the CIRKD
benchmark's ``benchmark`` and the authors' ``official``) have a group of the form
``{preset: <name>, benchmark: {knobs}, official: {knobs}}``: ``preset`` picks the block
that trains, every block is validated (a typo in the idle one fails too) and a block's
missing knobs take that preset's values from the code."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

from ..atomic import write_json
from ..params import Params, ParamsError


def active_params(method: str, raw: Mapping[str, Any], group: str) -> tuple[Optional[str], dict]:
    """``(preset, knobs)``: the knobs of the block ``raw['preset']`` names, validated and
    complete, for a method with presets; ``(None, raw)`` for one without. Raises a
    ValueError naming ``<group>.<key>``."""
    from .losses import METHODS

    cls = METHODS[method]
    presets = getattr(cls, "PRESETS", None)
    if not presets:
        return None, dict(raw)
    allowed = ["preset", *presets]
    unknown = sorted(str(key) for key in raw if key not in allowed)
    if unknown:
        names = ", ".join(f"{group}.{key}" for key in unknown)
        raise ValueError(f"params: unknown key(s) {names}; allowed keys of {group!r}: {', '.join(allowed)} "
                         f"(the knobs sit in the blocks {', '.join(f'{group}.{p}' for p in presets)})")
    name = raw.get("preset", "benchmark")
    if not isinstance(name, str) or name not in presets:
        raise ValueError(f"params: {group}.preset = {name!r} is invalid; expected one of "
                         f"{', '.join(repr(p) for p in presets)}")
    blocks = {p: cls.parse(raw.get(p), presets[p], f"{group}.{p}") for p in presets}
    return name, blocks[name]


def resolve(params: Params, method: str, out: str | Path) -> dict:
    from .losses import METHODS, PARAM_GROUPS, build_method

    if method not in METHODS:
        raise ParamsError(f"unknown distillation method {method!r}; expected one of {sorted(METHODS)}")
    group = PARAM_GROUPS[method]
    raw = params.group(group)
    try:
        preset, knobs = active_params(method, raw, group)
        # Building the method with tiny dimensions runs its own validation cheaply.
        build_method(method, knobs, num_classes=2, student_channels=4, teacher_channels=4)
    except ValueError as e:
        raise ParamsError(str(e)) from e
    if preset is None:
        resolved = dict(METHODS[method].DEFAULTS, **knobs)
        write_json(out, {"method": method, "group": group, "params": resolved})
    else:
        resolved = knobs
        write_json(out, {"method": method, "group": group, "preset": preset, "params": resolved})
    return resolved
