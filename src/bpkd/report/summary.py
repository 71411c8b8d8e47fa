"""README's results block from the committed studies: one compact table per study and
dataset, so that the synthetic streets and a real dataset (CamVid) fit side by side
within README's length.

Each study's full tables (the paper's layout, FLOPs, parameters, mAcc, body mIoU, the
gains and spread tables) stay in ``metrics/studies/<study>.md``; here each student is one
row: its mIoU as mean ± std over its seeds, its edge-band mIoU and boundary F-score, its
paired differences to the baseline student and to CWD (mean ± SE over the seeds both ran,
:func:`bpkd.report.spread.paired`), and its training time against the baseline's. A
dataset with peers' published numbers (:mod:`bpkd.report.peers`) gets their table of
gains and ranks beneath.
"""
from __future__ import annotations

import pandas as pd
from tabulate import tabulate

from .cells import MISSING, number
from .peers import peer_tables
from .peers import section as peer_section
from .spread import MARK, delta_cell, noise_sentence, spread_rows
from .study_results import StudyResults
from .tables import DATASET_TITLES, dataset_frame, method_rows, noise_floor, runs_frame

HEADERS = ["Methods", "mIoU(%) mean ± std (n)", "edge mIoU(%)", "BF(%)", "Δ vs S (paired)", "Δ vs CWD (paired)",
           "train time vs S"]


def intro(studies: list[StudyResults]) -> str:
    """The block's first paragraph: what it shows, where the full tables and one's own run are."""
    names = ", ".join(f"`{s.info['study']}`" for s in studies)
    return (f"This block shows the committed studies ({names}), not your run: each names its experiment, commit and "
            "snapshot, and its full tables are `metrics/studies/<study>.md`. Your own `dvc repro` writes its tables "
            "to `metrics/tables.md`; to show your own study here, run it and render it (`make study NAME=<study>`, "
            "then `python -m bpkd.study render <study>`), which rewrites the snapshot this block is read from. Each "
            "student's mIoU is its mean ± sample std over its n seeds; Δ: the paired difference over the seeds both "
            f"rows ran, mean ± SE with the paired t-test's p, {MARK} where |mean| > 2 SE (the one reading of \"beyond "
            "the seed noise\"); edge mIoU on the ground truth's boundary band, BF the boundary F-score; train time: "
            "the training stage's median wall time over its seeds ÷ the baseline student's. FLOPs, parameters, mAcc "
            "and body mIoU are in the full tables. `—`: not run.")


def _hosts(runs: pd.DataFrame) -> str:
    trained = runs.dropna(subset=["host_class"])
    found = sorted({(c, h.split(" (")[0], p.split(" ")[0]) for c, h, p in
                    zip(trained["cpu"].fillna("?"), trained["host_class"], trained["precision"].fillna("?"))})
    return "; ".join(f"{c} ({h}), {p}" for c, h, p in found) or "no cost record"


def _mean_cell(row) -> str:
    if row["n"] > 1:
        return f"{number(row['mIoU(%)'])} ± {number(row['mIoU std'])} ({row['n']})"
    return number(row["mIoU(%)"]) + (f" ({row['n']})" if row["n"] == 1 and row["model"] != "teacher" else "")


def dataset_section(study: StudyResults, dataset: str, level: int = 4) -> str:
    """One study's compact table on one dataset, its noise sentence and, where peers
    published numbers on it, their table."""
    p, info = study.params, study.info
    kw = study.render_kwargs()
    methods = method_rows(p["methods"], kw["released"])
    runs = runs_frame(study.folder, dataset, p["pairs"], methods, p["seeds"], kw["released"], p["baseline_seeds"],
                      kw["same_compute_seeds"])
    frame = dataset_frame(study.folder, dataset, p["pairs"], methods, runs, bool(kw["same_compute_seeds"]))
    spread = {(r["pair"], r["model"]): r for r in spread_rows(runs)}
    rows = []
    for r in frame.to_dict("records"):
        s = spread.get((r["pair"], r["model"]), {})
        cost = s.get("cost")
        rows.append([r["Methods"], _mean_cell(r), number(r["edge mIoU(%)"]), number(r["BF(%)"]),
                     delta_cell(s.get("vs_baseline")) if r["model"] not in ("teacher", "baseline") else MISSING,
                     delta_cell(s.get("vs_cwd")) if s.get("vs_cwd") else MISSING,
                     MISSING if cost is None else f"{cost:.2f}×"])
    floor = noise_floor(runs)
    noise = (f" Noise floor: the baseline's seed std {floor[0]:.2f} mIoU over {floor[1]} seeds (95 % "
             f"interval {floor[2]:.2f}–{floor[3]:.2f})." if floor else "")
    h = "#" * level
    parts = [f"{h} {DATASET_TITLES.get(dataset, dataset)}: the `{info['study']}` study", "",
             f"Experiment `{info['experiment']}`, based on commit `{info['based_on'][:7]}`, profile "
             f"`{p['profile']}`, rendered {info['rendered']} from `{study.folder.as_posix()}/` (full tables: "
             f"`metrics/studies/{info['study']}.md`); trained on {_hosts(runs)}.{noise}", "",
             tabulate(rows, headers=HEADERS, tablefmt="github", disable_numparse=True), "",
             noise_sentence(runs), ""]
    if dataset in peer_tables() and methods:
        for pair in p["pairs"]:
            parts += peer_section(runs, dataset, pair, "ours")
    return "\n".join(parts)


def readme_block(studies: list[StudyResults], level: int = 3) -> str:
    """The block: a heading, :func:`intro`, then :func:`dataset_section` of each study's datasets."""
    parts = [f"{'#' * level} The committed studies", "", intro(studies), ""]
    for study in studies:
        for dataset in study.params["datasets"]:
            parts.append(dataset_section(study, dataset, level + 1))
    return "\n".join(parts)
