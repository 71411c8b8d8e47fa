"""The contract every distillation method implements.

A method receives what the distiller recorded from the student and the frozen
teacher (decode-head logits and, when asked for, the decode-head features that
enter ``conv_seg``) plus the ground-truth labels, and returns a dict of named,
already-weighted loss terms whose keys start with ``loss_`` (mmengine sums every
``loss_*`` item and DVCLive draws one curve per key).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class Recorded:
    """Tensors recorded from one network's decode head.

    Attributes:
        logits: ``(N, K, h, w)`` output of ``decode_head.conv_seg`` (not upsampled).
        features: ``(N, C, h, w)`` input of ``decode_head.conv_seg``, or None when
            the method does not use features.
    """

    logits: Tensor
    features: Optional[Tensor] = None


def resize_like(x: Tensor, ref: Tensor) -> Tensor:
    """Bilinearly resize ``x`` to ``ref``'s spatial size (teacher and student heads
    may differ in stride, e.g. a 1/8 teacher and a 1/4 student)."""
    if x.shape[-2:] == ref.shape[-2:]:
        return x
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)


def check_positive(params: dict, key: str, group: str, allow_zero: bool = True) -> float:
    """Read ``params[key]`` as a float >= 0 (or > 0), raising a ValueError that names
    ``<group>.<key>``, the value and what is allowed."""
    value = params[key]
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        ok = value >= 0 if allow_zero else value > 0
    if not ok:
        allowed = "a number >= 0" if allow_zero else "a number > 0"
        raise ValueError(f"params: {group}.{key} = {value!r} is invalid; expected {allowed}")
    return float(value)


def merge_params(params: Optional[Mapping[str, Any]], defaults: Mapping[str, Any],
                 group: str) -> dict[str, Any]:
    """Overlay a params group on ``defaults``; unknown keys raise a ValueError naming
    ``<group>.<key>`` and listing the allowed keys. Missing keys take the default."""
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise ValueError(f"params: {group} must be a mapping of "
                         f"{sorted(defaults)}; got {type(params).__name__}")
    unknown = sorted(str(key) for key in params if key not in defaults)
    if unknown:
        names = ", ".join(f"{group}.{key}" for key in unknown)
        raise ValueError(f"params: unknown key(s) {names}; allowed keys of {group!r}: "
                         f"{', '.join(sorted(defaults))}")
    merged = dict(defaults)
    merged.update(params)
    return merged


def parse_params(params: Optional[Mapping[str, Any]], defaults: Mapping[str, Any], kinds: Mapping[str, str],
                 group: str) -> dict[str, Any]:
    """:func:`merge_params`, then check each key by its kind: ``nonneg`` (number >= 0),
    ``pos`` (number > 0), ``int`` (integer >= 1), ``bool``, ``betas`` (two numbers in
    ``[0, 1)``, returned as a tuple) or a tuple of strings (one of them)."""
    merged = merge_params(params, defaults, group)
    out: dict[str, Any] = {}
    for key, kind in kinds.items():
        value = merged[key]
        if isinstance(kind, tuple):
            if not isinstance(value, str) or value not in kind:
                raise ValueError(f"params: {group}.{key} = {value!r} is invalid; expected one of "
                                 f"{', '.join(repr(c) for c in kind)}")
            out[key] = value
        elif kind == "betas":
            ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(
                isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in value)
            if not ok:
                raise ValueError(f"params: {group}.{key} = {value!r} is invalid; expected two numbers in [0, 1)")
            out[key] = (float(value[0]), float(value[1]))
        elif kind == "int":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"params: {group}.{key} = {value!r} is invalid; expected a positive int")
            out[key] = value
        elif kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"params: {group}.{key} = {value!r} is invalid; expected true or false")
            out[key] = value
        else:
            out[key] = check_positive(merged, key, group, allow_zero=(kind == "nonneg"))
    return out


class DistillLoss(nn.Module):
    """Base class of a distillation method.

    Subclasses set ``uses_features`` and implement :meth:`forward`. Methods with an
    adversarial part also expose ``discriminator`` (an ``nn.Module`` trained by its own
    optimiser) and implement :meth:`discriminator_loss`. Any other trainable parts
    (connectors, projection heads) are ordinary submodules: they train with the
    student's optimiser and are dropped from the exported student.
    """

    uses_features: bool = False
    has_discriminator: bool = False  # class-level, so configs can be built before the method
    DEFAULTS: dict = {}

    def __init__(self, num_classes: int, student_channels: int, teacher_channels: int,
                 ignore_index: int = 255) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.student_channels = student_channels
        self.teacher_channels = teacher_channels
        self.ignore_index = ignore_index

    @property
    def discriminator(self) -> Optional[nn.Module]:
        """The method's discriminator submodule, or None."""
        return self._modules.get("discriminator")

    def forward(self, student: Recorded, teacher: Recorded, labels: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError

    def discriminator_loss(self, student_logits: Tensor, teacher_logits: Tensor) -> dict[str, Tensor]:
        """Loss for the discriminator's own step; student logits arrive detached."""
        raise NotImplementedError(f"{type(self).__name__} has no discriminator")
