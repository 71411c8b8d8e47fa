"""mmcv 1.x's FLOP-counting convention, reproduced with mmengine's jit analyzer.

mmseg 0.x's ``tools/get_flops.py`` (the environment the paper's README names)
counts with mmcv 1.x's ``get_model_complexity_info``: a forward hook on every
module whose *exact* type is in a fixed list adds that module's cost, and nothing
else is counted. (Measured, the paper's columns are *not* this convention but
mmengine's: README, "Models and the complexity convention"; this one is kept as
``--convention mmcv1``.) Its per-module formulas (one multiply-accumulate = one FLOP):

=====================================  ==================================================
module type (exact ``type(m)``)        FLOPs per call
=====================================  ==================================================
Conv1d/2d/3d, ConvTranspose2d          MACs (``prod(weight.shape) * output positions``;
                                       transposed: ``* input positions``) + one per
                                       output element if the conv has a bias
BatchNorm1d/2d/3d, GroupNorm,          input elements, x2 if affine
InstanceNorm1d/2d/3d, LayerNorm
ReLU, ReLU6, PReLU, ELU, LeakyReLU     output elements
Max/Avg/AdaptiveMax/AdaptiveAvg pools  input elements
Linear                                 input elements * output features (no bias)
Upsample                               output elements
=====================================  ==================================================

Everything else counts zero: functional calls (``F.interpolate`` behind mmseg's
``resize``, ``F.relu``, softmax), tensor arithmetic (residual additions, the
attention ``matmul`` of ISA/self-attention blocks), and modules of any type not in
the list -- notably ``nn.SyncBatchNorm``, which is not ``nn.BatchNorm2d``.

mmengine's ``FlopAnalyzer`` counts per traced *operator*, not per module, so the
same ``aten::upsample_bilinear2d`` is seen whether it came from an ``nn.Upsample``
(counted by mmcv 1.x) or from ``resize`` (not counted). We therefore give the
analyzer one handle per operator with mmcv 1.x's formula and then sum only the
per-module totals (``by_module()``) of modules whose type mmcv 1.x counts. All
those types are leaves, so no operator is counted twice; a module called several
times (ResNet's shared ``relu``) accumulates every call, as the hooks did.

One deliberate deviation: mmcv 1.x's ConvTranspose2d bias term multiplies the
output height by itself (a typo for height*width); we count output elements. None
of the paper's architectures has a transposed convolution.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

# mmcv 1.x counted its wrappers of these modules as well; mmcv 2.x still ships them.
try:
    from mmcv.cnn.bricks import wrappers as _mmcv_wrappers
except ImportError:  # pragma: no cover - mmcv is a dependency; keep the module importable
    _mmcv_wrappers = None


def _numel(value) -> int:
    from mmengine.analysis.jit_handles import get_shape

    shape = get_shape(value)
    n = 1
    for s in shape:
        n *= s
    return n


def _is_tensor(value) -> bool:
    from mmengine.analysis.jit_handles import get_shape

    return get_shape(value) is not None


def _conv_macs_plus_bias(inputs: list[Any], outputs: list[Any]) -> int:
    from mmengine.analysis.jit_handles import conv_flop_count, get_shape

    # aten::_convolution(input, weight, bias, stride, padding, dilation, transposed, ...)
    x, w, bias = inputs[:3]
    macs = conv_flop_count(get_shape(x), get_shape(w), get_shape(outputs[0]),
                           transposed=inputs[6].toIValue())
    return int(macs) + (_numel(outputs[0]) if _is_tensor(bias) else 0)


def _norm(weight_index: int):
    def handle(inputs: list[Any], outputs: list[Any]) -> int:
        return _numel(inputs[0]) * (2 if _is_tensor(inputs[weight_index]) else 1)

    return handle


def _output_elements(inputs: list[Any], outputs: list[Any]) -> int:
    return _numel(outputs[0])


def _input_elements(inputs: list[Any], outputs: list[Any]) -> int:
    return _numel(inputs[0])


def _linear_no_bias(inputs: list[Any], outputs: list[Any]) -> int:
    from mmengine.analysis.jit_handles import get_shape

    return _numel(inputs[0]) * get_shape(outputs[0])[-1]


# Operators the counted modules trace to (torch 2.x jit), with mmcv 1.x's formula.
OP_HANDLES = {
    "aten::_convolution": _conv_macs_plus_bias,
    # aten::batch_norm(input, weight, ...), instance_norm(input, weight, ...),
    # group_norm(input, groups, weight, ...), layer_norm(input, shape, weight, ...)
    "aten::batch_norm": _norm(1),
    "aten::instance_norm": _norm(1),
    "aten::group_norm": _norm(2),
    "aten::layer_norm": _norm(2),
    "aten::linear": _linear_no_bias,
    # ReLU6 traces to hardtanh; in-place variants carry a trailing underscore.
    **{f"aten::{op}": _output_elements for op in (
        "relu", "relu_", "hardtanh", "hardtanh_", "prelu", "elu", "elu_", "leaky_relu", "leaky_relu_",
        "upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d", "upsample_linear1d",
        "upsample_bilinear2d", "upsample_bicubic2d", "upsample_trilinear3d")},
    **{f"aten::{kind}_pool{d}d": _input_elements for kind in (
        "max", "avg", "adaptive_max", "adaptive_avg") for d in (1, 2, 3)},
}

COUNTED_MODULE_TYPES: tuple[type, ...] = (
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d,
    nn.ReLU, nn.PReLU, nn.ELU, nn.LeakyReLU, nn.ReLU6,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm,
    nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.LayerNorm,
    nn.Linear, nn.Upsample,
) + (tuple(getattr(_mmcv_wrappers, n) for n in ("Conv2d", "Conv3d", "ConvTranspose2d", "MaxPool2d",
                                                   "MaxPool3d", "Linear"))
     if _mmcv_wrappers is not None else ())


def mmcv1_flop_count(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> dict[str, int]:
    """FLOPs of ``model(*inputs)`` in mmcv 1.x's convention, as ``{module type name: FLOPs}``
    (sum the values for the total). Raises if a counted module ran an operator that
    has no handle here, rather than silently counting it as zero."""
    from mmengine.analysis.jit_analysis import JitModelAnalysis

    analyzer = JitModelAnalysis(model, inputs).set_op_handle(**OP_HANDLES)
    # Operators outside counted modules (additions, matmul, resize, ...) are expected
    # to have no handle: mmcv 1.x does not count them.
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    per_module = analyzer.by_module()
    totals: dict[str, int] = {}
    for name, module in model.named_modules():
        if type(module) not in COUNTED_MODULE_TYPES:
            continue
        missing = analyzer.unsupported_ops(name)
        if missing:
            raise RuntimeError(f"module {name!r} ({type(module).__name__}) ran operators with no "
                               f"mmcv 1.x handle: {dict(missing)}")
        key = type(module).__name__
        totals[key] = totals.get(key, 0) + int(per_module[name])
    return totals
