"""DVC's experiment records (``dvc exp show --json``), flattened to what a study needs.

Every number a study reports comes from here: the experiments' own params and
metrics files as DVC stored them, never from the workspace or a hand-written table.
"""
from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass

from .spec import StudyError


@dataclass(frozen=True)
class Record:
    name: str | None  # the experiment's name; None for the baseline commit / workspace
    rev: str
    state: str  # "success" (done, or the baseline), "queued", "running" or "failed"
    params: dict  # params.yaml's content
    metrics: dict  # {metrics file path: its content}


def _record(state: dict, executor: dict | None) -> Record:
    data = state.get("data") or {}
    params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
    metrics = {path: (v or {}).get("data") or {} for path, v in (data.get("metrics") or {}).items()}
    status = (executor or {}).get("state") or ("failed" if state.get("error") else "success")
    return Record(state.get("name"), state.get("rev", ""), status, params, metrics)


def parse(show: list[dict]) -> tuple[Record | None, list[Record]]:
    """``(baseline, experiments)`` of the first non-workspace entry of ``dvc exp show --json``
    (the commit experiments are based on: HEAD)."""
    baseline, experiments = None, []
    for entry in show:
        if entry.get("rev") == "workspace":
            continue
        baseline = _record(entry, None)
        for exp_range in entry.get("experiments") or []:
            revs = exp_range.get("revs") or []
            if revs:
                record = _record(revs[0], exp_range.get("executor"))
                experiments.append(Record(exp_range.get("name") or record.name, record.rev, record.state,
                                          record.params, record.metrics))
        break
    return baseline, experiments


def show(cwd: str = ".") -> tuple[Record | None, list[Record]]:
    proc = subprocess.run(["dvc", "exp", "show", "--json"], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise StudyError(f"dvc exp show --json failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return parse(json.loads(proc.stdout))


def get(params: dict, dotted: str):
    node = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
