"""``profiles.<p>.train.memory_format: channels_last`` as an mmengine hook.

mmengine has no memory-format option, so the hook converts the model (student,
teacher and a distiller's other modules alike) with PyTorch's own
``module.to(memory_format=torch.channels_last)`` once, at ``before_run``: after the
Runner has built and wrapped it, before weights are initialised or a checkpoint is
resumed into it. ``Module.to`` keeps every ``Parameter`` object (it swaps their
data), so the optimiser built before the hook still holds the model's parameters.
Inputs stay NCHW: a convolution whose weight is channels-last returns a
channels-last output, so every layer after the first runs NHWC. What it buys is
oneDNN's NHWC kernels, measured in ``python -m bpkd.bench.speed`` (docs/performance.md,
"Mixed precision and speed"). Exported checkpoints are written contiguous
(``bpkd.weights.save_checkpoint``), so they load anywhere as before.
"""
from __future__ import annotations

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ..params import MEMORY_FORMATS

__all__ = ["MEMORY_FORMATS", "ChannelsLastHook"]


@HOOKS.register_module()
class ChannelsLastHook(Hook):
    priority = "VERY_HIGH"  # before any hook that reads or loads weights

    def before_run(self, runner) -> None:
        runner.model.to(memory_format=torch.channels_last)
        runner.logger.info("memory format: channels_last (ChannelsLastHook)")
