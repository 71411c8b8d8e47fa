"""Training curves of every run of one dataset/pair, as the tables the plots page
draws (``dvc plots show``; templates in ``.dvc/plots/``).

The inputs are the DVCLive step logs the training stages already write
(``<log dir>/plots/metrics/<term>.tsv``; ``bpkd.layout.train_log``). Two shapes come out of them:

- a few terms every run logs, overlaid (``step``, ``run``, value: one line per run,
  ``overlay`` template): val mIoU, the decode head's CE and the total loss. Only
  these: the page is for reading what distillation did, and DVCLive's own logs keep
  everything else (timers, lr, iteration counters, accuracies) for whoever needs it;
- each distillation method's own loss terms (``loss_<method>[_*]``), one long table
  (``step``, ``method``, ``term``, ``value``) drawn with one panel per method
  (``terms`` template), because their scales differ by orders of magnitude.
"""
from __future__ import annotations

import csv
from pathlib import Path

# What the page overlays, in the page's order: the question first (did the student
# get better?), then what the task loss and the total objective did on the way.
OVERLAID = ("mIoU", "decode.loss_ce", "loss")


def _read_step_log(tsv: Path, term: str) -> list[tuple[int, str]]:
    with open(tsv, newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        if not reader.fieldnames or "step" not in reader.fieldnames or term not in reader.fieldnames:
            raise ValueError(f"{tsv}: expected a DVCLive step log with columns 'step' and {term!r}; "
                             f"found {reader.fieldnames}")
        return [(int(r["step"]), r[term]) for r in reader]


def collect(runs: dict[str, str | Path], terms: tuple[str, ...] = OVERLAID
            ) -> dict[str, list[tuple[int, str, str]]]:
    """``{term: [(step, run, value), ...]}`` for each of ``terms`` logged by >= 2 of ``runs``
    (``{run name: its DVCLive log dir}``).

    Runs without a step log yet are skipped (their training has not happened);
    rows keep the runs' order, then the step order of each log.
    """
    curves: dict[str, list[tuple[int, str, str]]] = {}
    for term in terms:
        rows, logged_by = [], 0
        for run, log_dir in runs.items():
            tsv = Path(log_dir) / "plots" / "metrics" / f"{term}.tsv"
            if tsv.is_file():
                rows += [(step, run, value) for step, value in _read_step_log(tsv, term)]
                logged_by += 1
        if logged_by >= 2:  # one line is not a comparison
            curves[term] = rows
    return curves


def method_terms(methods: dict[str, str | Path]) -> list[tuple[int, str, str, str]]:
    """``[(step, method, term, value), ...]``: every ``loss_<method>`` / ``loss_<method>_*``
    term each method logs (``{method: its DVCLive log dir}``).

    The prefix is the naming contract of the distillation losses
    (``bpkd.distill.losses``); the task loss and the total are in the overlaid tables.
    Methods that have not trained yet are skipped.
    """
    rows: list[tuple[int, str, str, str]] = []
    for method, log_dir in methods.items():
        logs = Path(log_dir) / "plots" / "metrics"
        for tsv in sorted(logs.glob(f"loss_{method}*.tsv")):
            if tsv.stem != f"loss_{method}" and not tsv.stem.startswith(f"loss_{method}_"):
                continue  # another method whose name starts with this one's
            rows += [(step, method, tsv.stem, value) for step, value in _read_step_log(tsv, tsv.stem)]
    return rows


def write(curves: dict[str, list[tuple[int, str, str]]], out_dir: Path) -> None:
    """One ``<term>.tsv`` per overlaid term in ``out_dir`` (which the caller makes atomic)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for term, rows in curves.items():
        _write_tsv(out_dir / f"{term}.tsv", ["step", "run", term], rows)


def write_terms(rows: list[tuple[int, str, str, str]], path: Path) -> None:
    _write_tsv(path, ["step", "method", "term", "value"], rows)


def _write_tsv(path: Path, header: list[str], rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
