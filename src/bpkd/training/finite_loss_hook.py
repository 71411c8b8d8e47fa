"""Stop training at the first non-finite loss term, naming the term and iteration.

Once a loss is NaN or infinite the optimiser step has already written NaN into the
weights (or will at the next step), so every later iteration, checkpoint and metric
is garbage; without a check the run would go on for hours and export a model that
predicts one class. This hook raises :class:`NonFiniteLoss` out of
``runner.train()``; ``train_and_export`` writes its checkpoint only after
``runner.train()`` returns, so nothing is exported and the stage fails.

Why not ``CheckInvalidLossHook``: it is mmdetection's (``mmdet.engine.hooks``), not
mmengine's or mmseg's, so it would add mmdet as a dependency; and it checks only the
total ``loss``, only every ``interval`` iterations (50 by default: up to 49 more
corrupted iterations, and possibly a checkpoint of NaN weights), with a bare
``assert`` whose message names neither the term nor the iteration (and which
``python -O`` removes). Here every logged term is checked at every iteration, which
costs nothing: the values are scalars that ``RuntimeInfoHook`` has already moved to
the host for the message hub.
"""
from __future__ import annotations

import math

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from .errors import NonFiniteLoss

__all__ = ["FiniteLossHook", "NonFiniteLoss"]


def _value(v) -> float | None:
    """A logged value as a float; None for something that is not a number."""
    if isinstance(v, torch.Tensor):
        v = v.detach()
        # A non-scalar term is reported by its worst element.
        if v.numel() != 1:
            bad = v[~torch.isfinite(v)]
            return float(bad.flatten()[0]) if bad.numel() else 0.0
        return float(v)
    if isinstance(v, (int, float)):
        return float(v)
    return None


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Raise :class:`NonFiniteLoss` after the first iteration with a NaN/inf loss term.

    ``outputs`` of ``after_train_iter`` is what the model's ``train_step`` returned:
    the ``log_vars`` of mmengine's ``parse_losses`` (the total ``loss`` and each term,
    e.g. ``decode.loss_ce``, ``loss_bpkd_edge``, the discriminator's terms).
    """

    # Runs before LoggerHook (BELOW_NORMAL) and CheckpointHook (VERY_LOW): the bad
    # iteration is neither logged to DVCLive nor saved as a checkpoint.
    priority = "HIGH"

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not outputs:
            return
        bad = {}
        for name, v in outputs.items():
            value = _value(v)
            if value is not None and not math.isfinite(value):
                bad[name] = value
        if not bad:
            return
        # Name a term rather than the total, which is non-finite whenever a term is.
        terms = [n for n in bad if n != "loss"] or list(bad)
        first = terms[0]
        # runner.iter counts finished iterations before this one; the log calls this
        # iteration runner.iter + 1.
        iteration = runner.iter + 1
        others = ", ".join(f"{n} = {bad[n]}" for n in bad if n != first)
        raise NonFiniteLoss(
            f"training stopped: loss term {first!r} is {bad[first]} at iteration {iteration} of {runner.max_iters}"
            + (f" (also {others})" if others else "")
            + "; nothing was exported. Lower the learning rate or the loss weights, or check the data.")
