"""The registry of distillation methods: a method name maps to its loss class and
to the ``params.yaml`` group holding its knobs (BPKD's knobs sit under ``loss`` so
that ``dvc exp run -S loss.edge_weight=...`` is the ablation knob)."""
from __future__ import annotations

from .base import DistillLoss, Recorded
from .bpkd import BPKDLoss
from .cirkd import CIRKDLoss
from .cwd import CWDLoss
from .ifvd import IFVDLoss
from .skds import SKDSLoss

METHODS: dict[str, type[DistillLoss]] = {
    "skds": SKDSLoss,
    "ifvd": IFVDLoss,
    "cirkd": CIRKDLoss,
    "cwd": CWDLoss,
    "bpkd": BPKDLoss,
}

PARAM_GROUPS: dict[str, str] = {
    "skds": "skds",
    "ifvd": "ifvd",
    "cirkd": "cirkd",
    "cwd": "cwd",
    "bpkd": "loss",
}


def build_method(name: str, params: dict, **dims) -> DistillLoss:
    """Build method ``name`` from its params group; ``dims`` are ``num_classes``,
    ``student_channels``, ``teacher_channels`` and ``ignore_index``."""
    if name not in METHODS:
        raise ValueError(f"unknown distillation method {name!r}; expected one of {sorted(METHODS)}")
    return METHODS[name](params=params, **dims)


__all__ = ["DistillLoss", "Recorded", "METHODS", "PARAM_GROUPS", "build_method"]
