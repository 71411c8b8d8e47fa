"""Training curves of every run of one dataset/pair, overlaid: one long table per
logged term (``step``, ``run``, value), rendered by DVC with the ``overlay``
template (``.dvc/plots/overlay.json``: one line per run, one dash per revision).

The inputs are the DVCLive step logs the training stages already write
(``<train_dir>/<run>/plots/metrics/<term>.tsv``); only terms that at least two runs
log are kept (a method's own loss terms stay in that run's DVCLive plots), and
bookkeeping columns (timing, lr, iteration) are left out.
"""
from __future__ import annotations

import csv
from pathlib import Path

SKIPPED_TERMS = frozenset({"time", "data_time", "iter", "lr", "step"})


def collect(train_dir: str | Path, runs: list[str]) -> dict[str, list[tuple[int, str, str]]]:
    """``{term: [(step, run, value), ...]}`` for the terms logged by >= 2 of ``runs``.

    Runs without a step log yet are skipped (their training has not happened);
    rows keep the runs' order, then the step order of each log.
    """
    curves: dict[str, list[tuple[int, str, str]]] = {}
    logged_by: dict[str, int] = {}
    for run in runs:
        for tsv in sorted((Path(train_dir) / run / "plots" / "metrics").glob("*.tsv")):
            term = tsv.stem
            if term in SKIPPED_TERMS or term.endswith(".lr"):  # per-optimiser lr of a distiller
                continue
            with open(tsv, newline="") as f:
                reader = csv.DictReader(f, delimiter="\t")
                if not reader.fieldnames or "step" not in reader.fieldnames or term not in reader.fieldnames:
                    raise ValueError(f"{tsv}: expected a DVCLive step log with columns 'step' and {term!r}; "
                                     f"found {reader.fieldnames}")
                rows = [(int(r["step"]), run, r[term]) for r in reader]
            curves.setdefault(term, []).extend(rows)
            logged_by[term] = logged_by.get(term, 0) + 1
    return {term: rows for term, rows in curves.items() if logged_by[term] >= 2}


def write(curves: dict[str, list[tuple[int, str, str]]], out_dir: Path) -> None:
    """One ``<term>.tsv`` per term in ``out_dir`` (which the caller makes atomic)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for term, rows in curves.items():
        with open(out_dir / f"{term}.tsv", "w", newline="") as f:
            w = csv.writer(f, delimiter="\t", lineterminator="\n")
            w.writerow(["step", "run", term])
            w.writerows(rows)
