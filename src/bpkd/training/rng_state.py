"""Torch's global random state across checkpoints and validation, so that a resumed
run draws exactly what an uninterrupted one draws.

mmengine seeds every generator once at start (``randomness``) and, on resume,
replays the data loader (the skipped batches go through the random transforms again,
which restores numpy's state), but it neither saves nor restores torch's global
generator. Whatever draws from it during training (dropout in the decode heads,
CIRKD's queue sampling and key permutation) would then draw, after a resume, the
numbers of iteration 0 again. Two draws also differ between a run that validates at
iteration k and one resumed from k: the validation loader takes a base seed from the
global generator when it starts, and mmengine saves the checkpoint of iteration k
before validating at k.

:class:`RngStateHook` closes both gaps: it stores the generator's state (CPU, and
every CUDA device's) in each training checkpoint and restores it on resume, and it
makes validation neutral (the state after validation is the state before it). Under
several processes the checkpoint holds rank 0's state, which every rank restores (the
ranks share one seed unless ``diff_rank_seed`` is set).
"""
from __future__ import annotations

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

_KEY = "torch_rng_state"


def _get() -> dict:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set(state: dict) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@HOOKS.register_module()
class RngStateHook(Hook):
    """Saves torch's global random state in checkpoints, restores it on resume, and
    keeps validation from consuming it (see the module docstring)."""

    priority = "VERY_LOW"

    def __init__(self) -> None:
        self._before_val: dict | None = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[_KEY] = _get()  # ByteTensors: loadable with weights_only=True

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if _KEY in checkpoint:
            _set(checkpoint[_KEY])

    def before_val(self, runner) -> None:
        self._before_val = _get()

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            _set(self._before_val)
            self._before_val = None
