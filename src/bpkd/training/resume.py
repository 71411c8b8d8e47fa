"""Resuming an interrupted training stage from its last mmengine checkpoint.

A stage killed mid-run (SIGKILL, a preempted Slurm job) keeps its work dir
(``data/work/...``, not a DVC output, so ``dvc repro`` does not delete it). When the
stage runs again with the same run, mmengine's ``resume=True`` restores model
(including a distiller's discriminator and memory banks, which are in its
``state_dict``), optimisers, LR schedulers, iteration and message hub from the last
checkpoint, and ``IterBasedTrainLoop`` skips the batches already seen.

"The same run" is checked, not assumed: a fingerprint of the resolved config, the
prepared dataset's record and the teacher checkpoint is stored in the work dir, and
a work dir left by a different run (changed params, retrained teacher) is wiped.

Checkpoints stay loadable with ``torch.load(weights_only=True)`` (torch's default,
which mmengine's loader uses): mmengine puts ``HistoryBuffer`` objects (whose pickle
needs ``builtins.getattr``) and numpy arrays in the message hub. Allow-listing those
globals would let a crafted checkpoint call ``getattr`` on anything, so
:class:`WeightsOnlyCheckpointHook` stores them as plain lists and rebuilds them on load.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.registry import HOOKS

FINGERPRINT = "run_fingerprint.txt"
_BUFFER_TAG = "__history_buffer__"


def _plain(value):
    """numpy scalars/arrays -> Python numbers/lists, recursively through dicts/lists."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return type(value)((k, _plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


@HOOKS.register_module()
class WeightsOnlyCheckpointHook(Hook):
    """Keeps mmengine's training checkpoints free of objects that ``weights_only`` refuses."""

    priority = "VERY_LOW"  # after every hook that adds to the checkpoint

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        hub = checkpoint.get("message_hub")
        if hub is not None:
            hub["log_scalars"] = type(hub["log_scalars"])(
                (key, {_BUFFER_TAG: True, "log": buf._log_history.tolist(), "count": buf._count_history.tolist(),
                       "max_length": buf.max_length})
                for key, buf in hub["log_scalars"].items())
            hub["runtime_info"] = _plain(hub["runtime_info"])
        checkpoint["meta"] = _plain(checkpoint.get("meta", {}))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        hub = checkpoint.get("message_hub")
        if hub is None:
            return
        for key, value in list(hub["log_scalars"].items()):
            if isinstance(value, dict) and value.get(_BUFFER_TAG):
                hub["log_scalars"][key] = HistoryBuffer(value["log"], value["count"], value["max_length"])


def fingerprint(cfg, data_root: str | Path, teacher_checkpoint: str | None = None) -> str:
    """What identifies a run: its config minus the work dir, the dataset record, the teacher file."""
    h = hashlib.sha256()
    text = cfg.pretty_text.replace(str(cfg.work_dir), "<work_dir>")
    h.update(text.encode())
    record = Path(data_root) / "dataset.json"
    h.update(record.read_bytes() if record.is_file() else b"")
    if teacher_checkpoint:
        st = Path(teacher_checkpoint).stat()
        h.update(json.dumps([st.st_size, st.st_mtime_ns]).encode())
    return h.hexdigest()


def prepare_work_dir(cfg, run_id: str) -> bool:
    """Set ``cfg.resume`` if the work dir holds a checkpoint of this very run.

    Returns True when resuming. A work dir of another run is removed first. Under
    torchrun every rank reaches the same decision from the files; only rank 0 writes.
    """
    work = Path(cfg.work_dir)
    stamp = work / FINGERPRINT
    same_run = stamp.is_file() and stamp.read_text().strip() == run_id
    resume = same_run and (work / "last_checkpoint").is_file()
    if int(os.environ.get("RANK", "0")) == 0:
        if not same_run and work.exists():
            shutil.rmtree(work)  # another run's (or an unidentified) state: never resume it
        work.mkdir(parents=True, exist_ok=True)
        stamp.write_text(run_id + "\n")
    cfg.resume = resume
    cfg.load_from = None  # mmengine then resumes from work_dir/last_checkpoint
    return resume
