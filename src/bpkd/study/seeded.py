"""A study's tables when its points run several seeds.

Each experiment's files are read from its own git commit (``git archive <rev>``): the
evaluations and costs DVC records as metrics, and the step logs the table also needs
(the final decode CE, the term balance), which DVC does not. Two kinds:

- ``model: all`` (``studies.seeds``): the report's own tables
  (:func:`bpkd.report.tables.render`) of the experiment, at its seeds: every student
  as mean ± std (n), the paired differences to S and to CWD, the train time; and a
  snapshot of what those tables read, ``<out>/<study>/<point>/`` (:func:`snapshot`),
  committed, from which the ``report`` stage renders README's results block;
- a model (``studies.bpkd_terms``): one row per point, mean ± std over its seeds of
  mIoU, edge mIoU, body mIoU, BF and the final decode CE, each term's final gradient
  balance, and its paired differences (mean ± SE over the shared seeds,
  :func:`bpkd.report.spread.paired`) to the reference point and to the baseline
  student of the same experiment; and each term's balance over training, averaged over
  the seeds (:func:`balance_trace`), as a table, a chart and the chart's TSV.
"""
from __future__ import annotations

import datetime
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from .. import layout
from ..report.spread import MARK, paired
from .records import Record, get
from .spec import Study, StudyError

EVAL = {"mIoU": "mIoU", "edge mIoU": "mIoU_edge", "body mIoU": "mIoU_body", "BF": "mBF"}
REFERENCE = "published"  # the point other points are paired with, when the study has it


def materialize(rev: str, dst: Path, cwd: str = ".") -> Path:
    """``metrics/`` as experiment ``rev`` committed it, under ``dst``; returns ``dst/metrics``."""
    proc = subprocess.run(["git", "archive", "--format=tar", rev, "metrics"], cwd=cwd, capture_output=True)
    if proc.returncode != 0:
        raise StudyError(f"git archive {rev} metrics failed: {proc.stderr.decode()[-1000:]}")
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        tar.extractall(dst, filter="data")
    return dst / "metrics"


# What the report's tables read (bpkd.report.tables): evaluations, costs, complexity; and
# the boundary views of the same models (boundary@: error, entropy and KL against the
# distance to a boundary), which a reader of the study looks at beside them.
SNAPSHOT = ("eval", "cost", "complexity", "boundary", "boundary_plots")
# The params the tables are rendered with, kept beside the snapshot (study.json).
SNAPSHOT_PARAMS = ("profile", "datasets", "pairs", "methods", "released", "seeds", "baseline_seeds",
                   "same_compute_seeds")


def snapshot(metrics: Path, dst: Path, record: Record, study: Study, label: str, base_rev: str) -> Path:
    """Copy what the report's tables read of an experiment's ``metrics``, and its boundary views (:data:`SNAPSHOT`),
    to ``dst``, with ``study.json``: the study, point and experiment, the commit it was
    based on, the date of the render and the params of :data:`SNAPSHOT_PARAMS`.
    Replaces ``dst`` whole (atomically). Returns ``dst``."""
    import shutil

    from ..atomic import atomic_path

    with atomic_path(dst, is_dir=True) as tmp:
        for part in SNAPSHOT:
            if (metrics / part).is_dir():
                shutil.copytree(metrics / part, tmp / part)
        info = {"study": study.name, "point": label, "experiment": record.name, "experiment_rev": record.rev,
                "based_on": base_rev, "rendered": datetime.date.today().isoformat(),
                "params": {key: get(record.params, key) for key in SNAPSHOT_PARAMS}}
        (tmp / "study.json").write_text(json.dumps(info, indent=2) + "\n")
    return dst


def seeds_of(params: dict, model: str) -> list[int]:
    key = {"baseline": "baseline_seeds", "baseline_same_compute": "same_compute_seeds"}.get(model, "seeds")
    return list(get(params, key) or [])


def several(study: Study, records: list[Record]) -> bool:
    return study.model == "all" or any(len(seeds_of(r.params, study.model)) > 1 for r in records)


def _json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def per_seed(metrics: Path, dataset: str, pair: str, model: str, seeds: list[int]) -> pd.DataFrame:
    """One row per seed that has an evaluation: its scores, its final decode CE and its
    last logged gradient balance of each term (``balance.*``)."""
    rows = []
    for seed in seeds:
        # layout's paths start with metrics/, as in the experiment's commit
        scores = _json(metrics.parent / layout.eval_json(dataset, pair, model, seed))
        if not scores:
            continue
        log = _json(metrics.parent / layout.train_log(dataset, pair, model, seed) / "metrics.json")
        rows.append({"seed": seed, **{col: scores.get(key) for col, key in EVAL.items()},
                     "decode CE": log.get("decode.loss_ce"),
                     **{k: v for k, v in log.items() if k.startswith("balance.") and k != "balance.ce_grad_norm"}})
    return pd.DataFrame(rows).set_index("seed") if rows else pd.DataFrame()


def balance_trace(metrics: Path, dataset: str, pair: str, model: str, seeds: list[int]) -> pd.DataFrame:
    """Each loss term's gradient balance over training (its ``balance.<term>`` step log,
    :mod:`bpkd.distill.term_balance`), the mean over ``seeds``: columns term, step, value.
    A term at weight 0 (its balance 0 throughout) is left out."""
    from ..report.curves import method_balance

    rows = method_balance({seed: metrics.parent / layout.train_log(dataset, pair, model, seed) for seed in seeds})
    if not rows:
        return pd.DataFrame(columns=["term", "step", "value"])
    frame = pd.DataFrame(rows, columns=["step", "seed", "term", "value"]).astype({"step": int, "value": float})
    trace = frame.groupby(["term", "step"])["value"].mean().reset_index()
    return trace[trace.groupby("term")["value"].transform(lambda v: (v != 0).any())].reset_index(drop=True)


def trace_markdown(traces: dict[str, pd.DataFrame]) -> str:
    """``traces``: ``{point: balance_trace(...)}``. One row per point and term, one column
    per logged step."""
    steps = sorted({int(s) for t in traces.values() for s in t["step"]})
    rows = []
    for point, trace in traces.items():
        for term, own in trace.groupby("term", sort=True):
            by_step = dict(zip(own["step"], own["value"]))
            rows.append([point, term, *[f"{by_step[s]:.2f}" if s in by_step else "—" for s in steps]])
    return tabulate(rows, headers=["point", "term", *[str(s) for s in steps]], tablefmt="github",
                    disable_numparse=True) + "\n"


def _write_trace(traces: dict[str, pd.DataFrame], study: Study, out_dir: Path, templates_dir: Path) -> list[Path]:
    """``<out_dir>/charts/<name>_balance.tsv`` (the plots page's ``terms`` layout: a panel per
    point) and its chart, ``<out_dir>/<name>_balance.png``."""
    from ..atomic import atomic_path, write_text
    from ..report.figures import chart_spec, to_png

    tsv, png = out_dir / "charts" / f"{study.name}_balance.tsv", out_dir / f"{study.name}_balance.png"
    lines = ["step\tmethod\tterm\tvalue"] + [
        f"{int(r.step)}\t{point}\t{r.term}\t{r.value:.6g}"
        for point, trace in traces.items() for r in trace.itertuples()]
    write_text(tsv, "\n".join(lines) + "\n")
    props = {"template": "terms", "x": "step", "y": "value", "y_label": "‖∇ term‖ / ‖∇ decode CE‖",
             "title": f"study {study.name}: each {study.model} term's gradient norm over the CE's, mean over seeds"}
    spec = chart_spec(tsv, props, templates_dir)
    # Unlike the plots page's methods, the points are compared on one scale, in the study's order.
    spec["resolve"] = {"scale": {"y": "shared"}}
    spec["spec"]["encoding"]["y"]["scale"] = {"type": "log"}  # ratios from about 0.5 to 50 on one scale
    spec["facet"]["sort"] = list(traces)
    spec["spec"]["encoding"].pop("strokeDash", None)  # one revision: no legend for it
    with atomic_path(png) as tmp:
        tmp.write_bytes(to_png(spec))
    return [tsv, png]


def _spread(values: pd.Series | None) -> str:
    if values is None:
        return "—"
    v = values.dropna().astype(float)
    if v.empty:
        return "—"
    return f"{v.mean():.2f} ± {v.std(ddof=1):.2f}" if len(v) > 1 else f"{v.mean():.2f}"


def _delta(d: dict | None) -> str:
    if d is None:
        return "—"
    if d["se"] is None:
        return f"{d['mean']:+.2f} (seed {d['seed']} only)"
    return f"{d['mean']:+.2f} ± {d['se']:.2f}{' ' + MARK if d['marked'] else ''}"


def arms_markdown(study: Study, arms: dict[str, tuple[pd.DataFrame, pd.DataFrame]], dataset: str, pair: str) -> str:
    """``arms``: ``{point: (the model's per-seed frame, the baseline's)}``, in the study's order."""
    reference = arms.get(REFERENCE, (None, None))[0]
    terms = sorted({c for own, _ in arms.values() for c in own.columns if c.startswith("balance.")})
    rows = []
    for point, (own, base) in arms.items():
        col = own["mIoU"] if "mIoU" in own else None
        rows.append([point, str(len(own)), *[_spread(own.get(c)) for c in (*EVAL, "decode CE")],
                     *[_spread(own.get(t)) for t in terms],
                     _delta(paired(col, reference["mIoU"])) if point != REFERENCE and col is not None
                     and reference is not None and "mIoU" in reference else "",
                     _delta(paired(col, base["mIoU"])) if col is not None and "mIoU" in base else "—"])
    headers = ["point", "n", "mIoU(%)", "edge mIoU(%)", "body mIoU(%)", "BF(%)", "final decode CE",
               *[f"final ‖∇{t.removeprefix('balance.')}‖/‖∇CE‖" for t in terms],
               f"Δ mIoU vs {REFERENCE}", "Δ mIoU vs S"]
    return (f"## {dataset} / {pair}\n\n"
            + tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True) + "\n")


def write(study: Study, experiments: dict[str, Record], out_dir: Path, cwd: str = ".",
          base_rev: str = "") -> list[Path]:
    """Render a several-seed study to ``<out_dir>/<name>.md`` (``model: all``: and each
    point's snapshot, ``<out_dir>/<name>/<point>/``); returns the paths written.
    ``base_rev``: the commit the experiments are based on."""
    import tempfile

    from ..atomic import write_text
    from ..report.tables import render

    missing = [p.experiment(study.name) for p in study.points if p.experiment(study.name) not in experiments]
    header = (f"# Study `{study.name}`\n\nRendered by `python -m bpkd.study render {study.name}` from each "
              "experiment's own commit (DVC's experiment records: `dvc exp show`)"
              + (f"; the experiments are based on commit `{base_rev[:7]}`" if base_rev else "")
              + f"; rendered {datetime.date.today().isoformat()}. "
              + (f"Not run yet: {', '.join(missing)}. " if missing else ""))
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        if study.model == "all":
            parts = [header + "Each student's numbers are its mean over the seeds it ran.\n"]
            for point in study.points:
                record = experiments.get(point.experiment(study.name))
                if record is None:
                    continue
                metrics = materialize(record.rev, Path(tmp) / point.label, cwd)
                written.append(snapshot(metrics, Path(out_dir) / study.name / point.label, record, study,
                                        point.label, base_rev))
                params = record.params
                parts.append(render(metrics, get(params, "datasets"), get(params, "pairs"), get(params, "methods"),
                                    level=2, seeds=seeds_of(params, "seeds"), released=get(params, "released") or [],
                                    baseline_seeds=seeds_of(params, "baseline"),
                                    same_compute_seeds=seeds_of(params, "baseline_same_compute")))
            text = "\n".join(parts)
        else:
            parts = [header + f"{study.model} student per point: mean ± sample std over the seeds it ran (n); "
                     f"Δ: paired over the shared seeds, mean ± SE, {MARK}: |Δ| > 2 SE; final: at the last "
                     "training step (the balance: gradient norm of the weighted term over the decode CE's, "
                     "bpkd.distill.term_balance).\n"]
            tables: dict[tuple[str, str], dict] = {}
            traces: dict[tuple[str, str], dict[str, pd.DataFrame]] = {}
            for point in study.points:
                record = experiments.get(point.experiment(study.name))
                if record is None:
                    continue
                metrics = materialize(record.rev, Path(tmp) / point.label, cwd)
                for dataset in get(record.params, "datasets") or []:
                    for pair in get(record.params, "pairs") or []:
                        own = per_seed(metrics, dataset, pair, study.model, seeds_of(record.params, study.model))
                        base = per_seed(metrics, dataset, pair, "baseline", seeds_of(record.params, "baseline"))
                        tables.setdefault((dataset, pair), {})[point.label] = (own, base)
                        traces.setdefault((dataset, pair), {})[point.label] = balance_trace(
                            metrics, dataset, pair, study.model, seeds_of(record.params, study.model))
            for (dataset, pair), arms in tables.items():
                parts.append(arms_markdown(study, arms, dataset, pair))
                if any(len(t) for t in traces[(dataset, pair)].values()):
                    parts.append(f"### Term balance over training\n\nEach term's gradient norm over the decode CE's "
                                 "on the student at each logged step, mean over the point's seeds "
                                 f"(chart: `{study.name}_balance.png`):\n\n" + trace_markdown(traces[(dataset, pair)]))
            text = "\n".join(parts)
            # the chart: one (dataset, pair) as it is; several, each point named with its own
            charted = {(f"{d}/{p}: {point}" if len(traces) > 1 else point): t
                       for (d, p), arms in traces.items() for point, t in arms.items() if len(t)}
            if charted:
                written += _write_trace(charted, study, Path(out_dir), Path(cwd) / ".dvc" / "plots")
    path = Path(out_dir) / f"{study.name}.md"
    write_text(path, text)
    return [path, *written]
