"""Regenerate the paper's results tables from ``metrics/`` alone.

One table per dataset in the seed README's layout
(``| Methods | FLOPs(G) | Parameters(M) | mIoU(%) | mAcc(%) |``), rows
``T: <teacher>``, ``S: <student>``, then each method, per pair. A run that has not
happened shows ``—``, never a number.

A second view of the same numbers: each distilled student's gain over its
baseline student and over CWD (the strongest prior method in the paper's tables),
so "BPKD beats every other method" can be checked at a glance.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from ..distill.band_radius import EVAL_EDGE_RADIUS
from ..models.pairs import ARCHS, PAIRS

METHOD_LABELS = {"skds": "SKDS", "ifvd": "IFVD", "cirkd": "CIRKD", "cwd": "CWD", "bpkd": "BPKD(Ours)"}
DATASET_TITLES = {"synthetic": "Synthetic streets (embedded)", "cityscapes": "Cityscapes 512x1024 80K",
                  "ade20k": "ADE20K 512x512 80K", "pascal_context59": "Pascal Context 59 480x480 80K"}
MISSING = "—"


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def dataset_frame(metrics_dir: Path, dataset: str, pairs: list[str], methods: list[str]) -> pd.DataFrame:
    complexity = {r["arch"]: r for r in (_read(metrics_dir / "complexity" / f"{dataset}.json") or [])}
    rows = []
    for pair in pairs:
        t, s = PAIRS[pair].teacher, PAIRS[pair].student
        entries = [("teacher", f"T: {ARCHS[t].name}", t), ("baseline", f"S: {ARCHS[s].name}", s)]
        entries += [(m, METHOD_LABELS.get(m, m.upper()), s) for m in methods]
        for model, label, arch in entries:
            m = _read(metrics_dir / "eval" / dataset / pair / f"{model}.json") or {}
            c = complexity.get(arch, {})
            rows.append({"pair": pair, "model": model, "Methods": label, "FLOPs(G)": c.get("flops_g"),
                         "Parameters(M)": c.get("params_m"), "mIoU(%)": m.get("mIoU"), "mAcc(%)": m.get("mAcc"),
                         "edge mIoU(%)": m.get("mIoU_edge"), "body mIoU(%)": m.get("mIoU_body"),
                         "BF(%)": m.get("mBF"), "edge_radius_px": m.get("edge_radius_px")})
    return pd.DataFrame(rows)


SEED_COLUMNS = ["Methods", "FLOPs(G)", "Parameters(M)", "mIoU(%)", "mAcc(%)"]
# Not in the paper's tables: mIoU on the ground truth's edge band and body, and the
# boundary F-score (bpkd.evaluation.region_metric).
BOUNDARY_COLUMNS = ["Methods", "mIoU(%)", "edge mIoU(%)", "body mIoU(%)", "BF(%)"]


def markdown_table(frame: pd.DataFrame, cols: list[str] = SEED_COLUMNS) -> str:
    shown = frame[cols].astype(object).map(lambda v: MISSING if v is None or pd.isna(v)
                                            else (f"{v:.2f}" if isinstance(v, float) else v))
    return tabulate(shown.values.tolist(), headers=cols, tablefmt="github", disable_numparse=True)


def _number(v, spec: str = ".2f") -> str:
    return MISSING if v is None or pd.isna(v) else format(v, spec)


def gains_table(frame: pd.DataFrame, methods: list[str]) -> str:
    """Per pair: each method's mIoU and its difference to the baseline student and to CWD."""
    rows = []
    for pair, group in frame.groupby("pair", sort=False):
        by_model = group.set_index("model")
        base = by_model.loc["baseline", "mIoU(%)"]
        cwd = by_model.loc["cwd", "mIoU(%)"] if "cwd" in by_model.index else None
        base_acc = by_model.loc["baseline", "mAcc(%)"]
        for m in methods:
            r = by_model.loc[m]
            miou, macc = r["mIoU(%)"], r["mAcc(%)"]
            rows.append([pair, r["Methods"], _number(miou), _number(_diff(miou, base), "+.2f"),
                         _number(_diff(miou, cwd), "+.2f") if m != "cwd" else "",
                         _number(_diff(macc, base_acc), "+.2f")])
    headers = ["Pair", "Methods", "mIoU(%)", "Δ mIoU vs S", "Δ mIoU vs CWD", "Δ mAcc vs S"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def _band_caption(frame: pd.DataFrame) -> str:
    """The evaluation edge band as the evaluations recorded it (bpkd.distill.band_radius)."""
    radii = sorted({int(r) for r in frame["edge_radius_px"] if r is not None and not pd.isna(r)})
    if not radii or radii == [EVAL_EDGE_RADIUS]:
        return f"evaluation edge band of radius {EVAL_EDGE_RADIUS} px"
    return (f"evaluation edge band of radius {' / '.join(map(str, radii))} px: {EVAL_EDGE_RADIUS} px at the "
            "paper's resolution")


def _diff(a, b):
    if a is None or b is None or pd.isna(a) or pd.isna(b):
        return None
    return float(a) - float(b)


def render(metrics_dir: str | Path, datasets: list[str], pairs: list[str], methods: list[str],
           level: int = 1) -> str:
    """The tables document; ``level`` is the heading level of its title (README embeds it lower)."""
    metrics_dir = Path(metrics_dir)
    h = "#" * level
    parts = [f"{h} Results", "",
             "Regenerated by the `report` stage from `metrics/`; `—` marks a run that has not happened.", ""]
    for dataset in datasets:
        frame = dataset_frame(metrics_dir, dataset, pairs, methods)
        parts += [f"{h}# {DATASET_TITLES.get(dataset, dataset)}", "", markdown_table(frame), "",
                  "Gains of each distilled student:", "", gains_table(frame, methods), "",
                  f"Boundaries ({_band_caption(frame)}; BF: boundary F-score, 2 px tolerance):", "",
                  markdown_table(frame, BOUNDARY_COLUMNS), ""]
    return "\n".join(parts)
