"""Reading and writing checkpoints.

Every checkpoint is read with ``torch.load(..., weights_only=True)``: a file that
needs arbitrary unpickling (and so could run code) is refused. Students and
teachers trained here are exported as plain ``{"meta": ..., "state_dict": ...}``
files that any mmseg model of the same architecture loads.

Weights from elsewhere: ``registry`` (where each file comes from, and its hash,
from ``registry.yaml``), ``download`` (resumable, verified fetching; also
``python -m bpkd.weights.download``), ``convert`` (released mmseg 0.x / mmrazor
checkpoints onto the mmseg 1.x model) and ``resolve`` (the glue stages call).
Their errors subclass ``CheckpointError``, so stages print them as one line.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import torch

from ..atomic import atomic_path
from ..errors import UserError


class CheckpointError(UserError, RuntimeError):
    """A checkpoint is missing, unsafe or does not fit the model."""


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint safely and return a dict with a ``state_dict`` key."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused, it needs arbitrary unpickling (weights_only=True failed: "
            f"{str(e).splitlines()[0]}). Only load checkpoints from sources you trust, re-saved as plain tensors."
        ) from e
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: expected a dict of tensors, got {type(ckpt).__name__}")
    if "state_dict" not in ckpt:
        ckpt = {"state_dict": ckpt, "meta": {}}
    return ckpt


def save_checkpoint(state_dict: dict, path: str | Path, meta: dict | None = None) -> None:
    """Save ``state_dict`` (tensors only) with ``meta`` atomically."""
    # Contiguous whatever the run's memory format (channels_last): the file is the same
    # plain layout any mmseg model loads.
    clean = {k: v.detach().cpu().clone(memory_format=torch.contiguous_format) for k, v in state_dict.items()}
    with atomic_path(path) as tmp:
        torch.save({"meta": dict(meta or {}), "state_dict": clean}, tmp)


def load_into(model: torch.nn.Module, path: str | Path) -> dict:
    """Load a checkpoint into ``model`` strictly; returns its ``meta``."""
    ckpt = load_checkpoint(path)
    missing, unexpected = model.load_state_dict(ckpt["state_dict"], strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path}: does not fit {type(model).__name__}: "
                              f"{len(missing)} missing keys (e.g. {missing[:3]}), "
                              f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})")
    return ckpt.get("meta", {})
