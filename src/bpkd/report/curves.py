"""Training curves of every run of one dataset/pair, as the tables the plots page
draws (``dvc plots show``; templates in ``.dvc/plots/``).

The inputs are the DVCLive step logs the training stages already write
(``<log dir>/plots/metrics/<term>.tsv``; ``bpkd.layout.train_log``). Two shapes come out of them:

- a few terms every run logs, overlaid (``step``, ``run``, value: one line per run,
  ``overlay`` template): val mIoU (its last point the run's ``evaluate…@`` score, see
  :func:`collect`), the decode head's CE and the total loss. Only
  these: the page is for reading what distillation did, and DVCLive's own logs keep
  everything else (timers, lr, iteration counters, accuracies) for whoever needs it;
- each distillation method's own loss terms (``loss_<method>[_*]``), one long table
  (``step``, ``method``, ``term``, ``value``) drawn with one panel per method
  (``terms`` template), because their scales differ by orders of magnitude; and in
  the same shape each term's gradient balance against the decode CE (``balance.*``).
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


def _step_log(log_dir: str | Path, term: str) -> Path:
    return Path(log_dir) / "plots" / "metrics" / f"{term}.tsv"


def last_step(log_dir: str | Path, term: str = "loss") -> int | None:
    """The last step of a run's ``term`` log: its last training iteration; ``None``
    when the run has no such log (it has not trained yet)."""
    tsv = _step_log(log_dir, term)
    if not tsv.is_file():
        return None
    rows = _read_step_log(tsv, term)
    if not rows:
        raise ValueError(f"{tsv}: the step log has no rows")
    return rows[-1][0]


def collect(runs: dict[str, str | Path], terms: tuple[str, ...] = OVERLAID,
            finals: dict[str, dict[str, tuple[int, str]]] | None = None) -> dict[str, list[tuple[int, str, str]]]:
    """``{term: [(step, run, value), ...]}`` for each of ``terms`` logged by >= 2 of ``runs``
    (``{run name: its DVCLive log dir}``).

    ``finals`` (``{term: {run: (step, value)}}``) adds each run's last point from
    elsewhere: the training stages do not validate at their last iteration
    (``bpkd.training.val_loop``), so the charts stage passes the ``evaluate…@`` score of
    that checkpoint as the val mIoU of the last step. A logged row at or after that step
    gives way to it.

    Runs without a step log yet are skipped (their training has not happened);
    rows keep the runs' order, then the step order of each log.
    """
    finals = finals or {}
    curves: dict[str, list[tuple[int, str, str]]] = {}
    for term in terms:
        rows, logged_by = [], 0
        for run, log_dir in runs.items():
            tsv = _step_log(log_dir, term)
            own = [(step, run, value) for step, value in _read_step_log(tsv, term)] if tsv.is_file() else []
            final = finals.get(term, {}).get(run)
            if final is not None:
                own = [r for r in own if r[0] < final[0]] + [(final[0], run, final[1])]
            rows += own
            logged_by += bool(own)
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


def method_balance(methods: dict[str, str | Path]) -> list[tuple[int, str, str, str]]:
    """``[(step, method, term, value), ...]``: each method's loss-term balance
    (``balance.<term>``: the term's gradient norm over the decode CE's,
    :mod:`bpkd.distill.term_balance`) as its distillation logged it. The CE's own norm
    (``balance.ce_grad_norm``) is the denominator, not a term: left out."""
    rows: list[tuple[int, str, str, str]] = []
    for method, log_dir in methods.items():
        for tsv in sorted((Path(log_dir) / "plots" / "metrics").glob("balance.*.tsv")):
            if tsv.stem == "balance.ce_grad_norm":
                continue
            rows += [(step, method, tsv.stem.removeprefix("balance."), value)
                     for step, value in _read_step_log(tsv, tsv.stem)]
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
