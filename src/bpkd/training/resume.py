"""Resuming an interrupted training stage from its last mmengine checkpoint.

A stage killed mid-run (SIGKILL, a preempted Slurm job) keeps its work dir
(``data/work/...``, not a DVC output, so ``dvc repro`` does not delete it). When the
stage runs again with the same run, mmengine's ``resume=True`` restores model
(including a distiller's discriminator and memory banks, which are in its
``state_dict``), optimisers, LR schedulers, iteration and message hub from the last
checkpoint, and ``IterBasedTrainLoop`` skips the batches already seen.

A resumed run also ends with the same step log as an uninterrupted one
(:func:`trim_step_log`): rows logged after the checkpoint by the killed run are cut
(they are logged again), and a validation that the checkpoint's iteration was due but
that did not finish (mmengine saves the checkpoint of iteration k *before* validating
at k, and resumes *after* k) is run again first (:class:`PendingValidationHook`).

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

import csv
import hashlib
import json
import os
import re
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
    last = work / "last_checkpoint"
    # mmengine writes last_checkpoint once the checkpoint it names is complete; a name
    # whose file is gone cannot be resumed (start over rather than fail).
    resume = same_run and last.is_file() and Path(last.read_text().strip()).is_file()
    same_run = same_run and (resume or not last.is_file())
    if int(os.environ.get("RANK", "0")) == 0:
        if not same_run and work.exists():
            shutil.rmtree(work)  # another run's (or an unidentified) state: never resume it
        work.mkdir(parents=True, exist_ok=True)
        stamp.write_text(run_id + "\n")
    cfg.resume = resume
    cfg.load_from = None  # mmengine then resumes from work_dir/last_checkpoint
    return resume


def resumed_iteration(work_dir: str | Path) -> int:
    """The iteration of the checkpoint a resumed run starts from (``iter_<k>.pth``)."""
    last = (Path(work_dir) / "last_checkpoint").read_text().strip()
    found = re.search(r"iter_(\d+)\.pth$", last)
    if not found:
        raise ValueError(f"{Path(work_dir) / 'last_checkpoint'}: expected a path ending in iter_<k>.pth, got {last!r}")
    return int(found.group(1))


def _rows(tsv: Path) -> tuple[list[str], list[dict]]:
    with open(tsv, newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        return list(reader.fieldnames or []), list(reader)


def val_logged(log_dir: str | Path, iteration: int, val_metrics: tuple[str, ...]) -> bool:
    """Whether every validation metric has its row of ``iteration`` in the step log."""
    plots = Path(log_dir) / "plots" / "metrics"
    return all((plots / f"{name}.tsv").is_file()
               and any(int(r["step"]) == iteration for r in _rows(plots / f"{name}.tsv")[1])
               for name in val_metrics)


def trim_step_log(log_dir: str | Path, iteration: int, val_metrics: tuple[str, ...], rerun_val: bool) -> None:
    """Cut a DVCLive step log back to what an uninterrupted run had logged when it saved
    the checkpoint of ``iteration``: rows after ``iteration`` go, and so do the
    validation rows of ``iteration`` when that validation runs again (``rerun_val``).
    DVCLive's summary (``metrics.json``) is removed: the backend rewrites it from the
    rows when the run ends (:func:`summary_of`)."""
    plots = Path(log_dir) / "plots" / "metrics"
    for tsv in sorted(plots.glob("*.tsv")) if plots.is_dir() else []:
        header, rows = _rows(tsv)
        last = iteration - 1 if rerun_val and tsv.stem in val_metrics else iteration
        with open(tsv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=header, delimiter="\t", lineterminator="\n")
            writer.writeheader()
            writer.writerows(r for r in rows if int(r["step"]) <= last)
    (Path(log_dir) / "metrics.json").unlink(missing_ok=True)


def summary_of(log_dir: str | Path) -> dict:
    """DVCLive's summary made from the step log alone: the last value of each metric,
    keys sorted, and the last step. DVCLive's own summary depends on what the process
    logged (a resumed one has not logged what came before its checkpoint)."""
    summary: dict = {}
    step = 0
    for tsv in sorted((Path(log_dir) / "plots" / "metrics").glob("*.tsv")):
        rows = _rows(tsv)[1]
        if rows:
            summary[tsv.stem] = float(rows[-1][tsv.stem])
            step = max(step, max(int(r["step"]) for r in rows))
    summary["step"] = step
    return summary


@HOOKS.register_module()
class PendingValidationHook(Hook):
    """Runs the validation that a resumed run's checkpoint iteration was due (see
    :func:`trim_step_log`) before training continues."""

    priority = "LOW"

    def before_train(self, runner) -> None:
        runner.val_loop.run()
