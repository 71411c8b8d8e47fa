"""Regenerate the paper's results tables from ``metrics/`` alone.

One table per dataset in the layout of the paper's README
(``| Methods | FLOPs(G) | Parameters(M) | mIoU(%) | mAcc(%) |``), rows
``T: <teacher>``, ``S: <student>``, then each method, per pair. A run that has not
happened shows ``—``, never a number.

A second view of the same numbers: each distilled student's gain over its
baseline student and over CWD (the strongest prior method in the paper's tables),
so "BPKD beats every other method" can be checked at a glance.

Students run once per seed (``bpkd.layout``): the distilled ones per seed of
``seeds``, the baseline per seed of ``baseline_seeds`` (by default three, against
the methods' one). The tables show each student's mean over its seeds, with
its sample std and n beside the mIoU of one that ran several; the gains table
compares each method with the baseline's mean and puts the baseline's seed std (the
noise floor) beside each Δ; a spread table (:func:`spread_table`) gives each
student's standard deviation and its paired differences.

On a dataset the paper reports (not ``synthetic``), a third view puts each measured
mIoU/mAcc beside the paper's (:mod:`bpkd.report.reported`); on one it does not
report but peers do (CamVid), each method's gain and rank beside theirs
(:mod:`bpkd.report.peers`).

A row of ``released`` (the paper's checkpoints, evaluated by ``released@``, no seed)
is shown whether or not ``methods`` trains that model: with ``methods: []`` and every
model released, the tables are the paper's, measured from its checkpoints.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from .. import layout
from ..distill.band_radius import EVAL_EDGE_RADIUS
from ..models.pairs import ARCHS, PAIRS
from ..params import SAME_COMPUTE
from .cells import number
from .peers import peer_tables
from .peers import section as peer_section
from .reported import comparison_table, seed_tables
from .spread import noise_sentence, spread_table

METHOD_LABELS = {"skds": "SKDS", "ifvd": "IFVD", "cirkd": "CIRKD", "cwd": "CWD", "bpkd": "BPKD(Ours)"}
DATASET_TITLES = {"synthetic": "Synthetic streets (embedded)", "cityscapes": "Cityscapes 512x1024 80K",
                  "ade20k": "ADE20K 512x512 80K", "pascal_context59": "Pascal Context 59 480x480 80K",
                  "camvid": "CamVid (real street frames, test split)"}


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


EVAL_KEYS = {"mIoU(%)": "mIoU", "mAcc(%)": "mAcc", "edge mIoU(%)": "mIoU_edge", "body mIoU(%)": "mIoU_body",
             "BF(%)": "mBF", "edge_radius_px": "edge_radius_px"}


def method_rows(methods: list[str], released: list[str] = ()) -> list[str]:
    """The distilled students the tables show: those of ``methods`` (trained here), then
    the released ones ``methods`` does not list, in the paper's order (with
    ``methods: []`` and every model released, the paper's rows from its checkpoints)."""
    return [*methods, *(m for m in METHOD_LABELS if m in released and m not in methods)]


def _entries(pair: str, methods: list[str], same_compute: bool = False) -> list[tuple[str, str, str]]:
    t, s = PAIRS[pair].teacher, PAIRS[pair].student
    return ([("teacher", f"T: {ARCHS[t].name}", t), ("baseline", f"S: {ARCHS[s].name}", s)]
            + ([(SAME_COMPUTE, f"S: {ARCHS[s].name}, same compute", s)] if same_compute else [])
            + [(m, METHOD_LABELS.get(m, m.upper()), s) for m in methods])


# What each training run cost (bpkd.training.cost), beside its evaluation.
COST_KEYS = ("wall_s", "first_iter", "host_class", "cpu", "precision")


def runs_frame(metrics_dir: Path, dataset: str, pairs: list[str], methods: list[str],
               seeds: list[int], released: list[str] = (), baseline_seeds: list[int] | None = None,
               same_compute_seeds: list[int] = ()) -> pd.DataFrame:
    """One row per evaluated run: ``pair``, ``model``, ``Methods``, ``seed`` (None for the
    teacher and the ``released`` checkpoints, which are given, not trained per seed),
    the evaluation's numbers and, where the training stage recorded it, its cost
    (``wall_s``, ``first_iter``, ``host_class``). The baseline's runs are those of ``baseline_seeds``
    (default: ``seeds``), the same-compute baseline's those of ``same_compute_seeds``,
    the methods' those of ``seeds``."""
    own_seeds = {"baseline": seeds if baseline_seeds is None else baseline_seeds, SAME_COMPUTE: same_compute_seeds}
    rows = []
    for pair in pairs:
        for model, label, _ in _entries(pair, methods, bool(same_compute_seeds)):
            given = model == "teacher" or model in released
            for seed in [None] if given else own_seeds.get(model, seeds):
                m = _read(Path(layout.eval_json(dataset, pair, model, seed, metrics=str(metrics_dir))))
                if m is None or m.get("released") is False:  # not run, or no file released for this pair
                    continue
                cost = _read(Path(layout.cost_json(dataset, pair, model, seed, metrics=str(metrics_dir)))) or {}
                rows.append({"pair": pair, "model": model, "Methods": label, "seed": seed,
                             **{col: m.get(key) for col, key in EVAL_KEYS.items()},
                             **{key: cost.get(key) for key in COST_KEYS}})
    return pd.DataFrame(rows, columns=["pair", "model", "Methods", "seed", *EVAL_KEYS, *COST_KEYS])


def dataset_frame(metrics_dir: Path, dataset: str, pairs: list[str], methods: list[str],
                  runs: pd.DataFrame, same_compute: bool = False) -> pd.DataFrame:
    """The rows of the paper's README, each student's numbers the mean over its seeds
    (``runs``: :func:`runs_frame` of the same dataset), with ``n`` (its runs) and
    ``mIoU std`` (their sample std, None below two runs)."""
    complexity = {r["arch"]: r for r in (_read(metrics_dir / "complexity" / f"{dataset}.json") or [])}
    rows = []
    for pair in pairs:
        for model, label, arch in _entries(pair, methods, same_compute):
            mine = runs[(runs["pair"] == pair) & (runs["model"] == model)]
            c = complexity.get(arch, {})
            rows.append({"pair": pair, "model": model, "Methods": label, "FLOPs(G)": c.get("flops_g"),
                         "Parameters(M)": c.get("params_m"),
                         **{col: (mine[col].astype(float).mean() if len(mine) else None) for col in EVAL_KEYS},
                         "n": len(mine),
                         "mIoU std": float(mine["mIoU(%)"].astype(float).std(ddof=1)) if len(mine) > 1 else None})
    return pd.DataFrame(rows)


def with_spread(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the mIoU of each student that ran several seeds shown as
    ``mean ± std (n=k)`` (the others keep their plain number)."""
    shown = frame.copy().astype({"mIoU(%)": object})
    several = shown["n"] > 1
    shown.loc[several, "mIoU(%)"] = [f"{number(m)} ± {number(sd)} (n={n})" for m, sd, n in
                                     zip(shown.loc[several, "mIoU(%)"], shown.loc[several, "mIoU std"],
                                         shown.loc[several, "n"])]
    return shown


COMPLEXITY_CAPTION = ("FLOPs(G) and Parameters(M) are counted as the paper's README counts them, so they compare "
                      "with its tables: one 512×512 image, 150-class (ADE20K) heads for every dataset "
                      "(`bpkd.models.complexity`); the dataset's own heads are under `dataset_heads` in "
                      "`metrics/complexity/<dataset>.json`.")
SEED_COLUMNS = ["Methods", "FLOPs(G)", "Parameters(M)", "mIoU(%)", "mAcc(%)"]
# Not in the paper's tables: mIoU on the ground truth's edge band and body, and the
# boundary F-score (bpkd.evaluation.region_metric).
BOUNDARY_COLUMNS = ["Methods", "mIoU(%)", "edge mIoU(%)", "body mIoU(%)", "BF(%)"]


def markdown_table(frame: pd.DataFrame, cols: list[str] = SEED_COLUMNS) -> str:
    # Numbers through the shared formatter; labels (str) pass as they are.
    shown = frame[cols].astype(object).map(lambda v: number(v) if v is None or isinstance(v, float) or pd.isna(v)
                                            else v)
    return tabulate(shown.values.tolist(), headers=cols, tablefmt="github", disable_numparse=True)


def gains_table(frame: pd.DataFrame, methods: list[str]) -> str:
    """Per pair: each method's mIoU and its difference to the baseline student (its mean
    over its seeds) and to CWD; where the baseline ran several seeds, its seed std (the
    noise floor) beside the Δ vs S."""
    noise = bool((frame.loc[frame["model"] == "baseline", "n"] > 1).any())
    rows = []
    for pair, group in frame.groupby("pair", sort=False):
        by_model = group.set_index("model")
        base = by_model.loc["baseline", "mIoU(%)"]
        cwd = by_model.loc["cwd", "mIoU(%)"] if "cwd" in by_model.index else None
        base_acc = by_model.loc["baseline", "mAcc(%)"]
        base_std = (f"{number(by_model.loc['baseline', 'mIoU std'])} (n={by_model.loc['baseline', 'n']})"
                    if by_model.loc["baseline", "n"] > 1 else number(None))
        for m in methods:
            r = by_model.loc[m]
            miou, macc = r["mIoU(%)"], r["mAcc(%)"]
            rows.append([pair, r["Methods"], number(miou), number(_diff(miou, base), "+.2f"),
                         *([base_std] if noise else []),
                         number(_diff(miou, cwd), "+.2f") if m != "cwd" else "",
                         number(_diff(macc, base_acc), "+.2f")])
    headers = ["Pair", "Methods", "mIoU(%)", "Δ mIoU vs S", *(["S seed std"] if noise else []), "Δ mIoU vs CWD",
               "Δ mAcc vs S"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


GAINS_CAPTION = "Gains of each distilled student:"
GAINS_NOISE_CAPTION = ("Gains of each distilled student (Δ vs S: against the baseline's mean over its seeds; "
                       "S seed std: the baseline's sample standard deviation over those seeds, for scale; whether "
                       "a difference exceeds the seed noise is read from the spread table's paired Δ, "
                       "|Δ| > 2 SE, nowhere else):")


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


def _seeds_caption(seeds: list[int], baseline_seeds: list[int], gains: bool = True) -> str | None:
    def listed(s):
        return ", ".join(map(str, s))

    if baseline_seeds == seeds or not baseline_seeds:
        if len(seeds) < 2:
            return None
        return (f"Every student ran once per seed ({listed(seeds)}): the tables show each student's mean over its "
                "seeds (its mIoU with ± the sample standard deviation, n seeds), the spread table its paired "
                "differences.")
    return (f"The baseline student ran once per seed ({listed(baseline_seeds)}), each distilled student once per "
            f"seed ({listed(seeds)}): the tables show each student's mean over its seeds, its mIoU with ± the "
            "sample standard deviation (n seeds) where it ran several; "
            + ("the gains table puts the baseline's seed std, its noise floor, beside each Δ vs S, and " if gains else "")
            + "the spread table pairs the runs of a shared seed.")


def noise_interval(std: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """The ``level`` confidence interval of a normal population's std from a sample std
    over ``n`` runs (chi-square with n - 1 degrees of freedom)."""
    from scipy.stats import chi2

    df = n - 1
    return std * (df / chi2.ppf(1 - (1 - level) / 2, df)) ** 0.5, std * (df / chi2.ppf((1 - level) / 2, df)) ** 0.5


def noise_floor(runs: pd.DataFrame) -> tuple[float, int, float, float] | None:
    """The baseline's seed std over its runs in ``runs`` (:func:`runs_frame`), their number and
    the std's 95 % interval (:func:`noise_interval`); None below three runs."""
    base = runs.loc[runs["model"] == "baseline", "mIoU(%)"].dropna().astype(float)
    if len(base) < 3:
        return None
    std = float(base.std(ddof=1))
    return (std, len(base), *noise_interval(std, len(base)))


def _unreleased(metrics_dir: Path, dataset: str, pairs: list[str], methods: list[str],
                released: list[str]) -> list[str]:
    """``"<label> (<pair>)"`` of each model of ``released`` whose released@ stage found no
    file for that pair (the paper's README links none)."""
    return [f"{label} ({pair})" for pair in pairs for model, label, _ in _entries(pair, methods)
            if model in released and (_read(Path(layout.eval_json(dataset, pair, model, metrics=str(metrics_dir))))
                                       or {}).get("released") is False]


def _reading(datasets: list[str], runs: dict[str, pd.DataFrame], unreleased: dict[str, list[str]]) -> str:
    """What the numbers mean, in a few generated lines: the data, the rows evaluated from
    released checkpoints, the seeds each row ran, the one noise threshold, and where
    BPKD's place is explained."""
    lines = []
    if "synthetic" in datasets:
        lines.append("- On `synthetic` these numbers measure the methods on the pipeline's own generated street scenes "
                     "([datasets](docs/datasets.md)), not the paper's claims.")
    for dataset, frame in runs.items():
        given = frame.loc[frame["seed"].isna() & (frame["model"] != "teacher"), "Methods"].drop_duplicates()
        if len(given):
            lines.append(f"- Released checkpoints ({dataset}): {', '.join(given)}: downloaded and evaluated by "
                         "`released@…`, not trained here (`src/bpkd/weights/registry.yaml`, "
                         "[weights](docs/weights.md))"
                         + (f"; none released, so `—`: {', '.join(unreleased[dataset])}"
                            if unreleased[dataset] else "") + ".")
    for dataset, frame in runs.items():
        trained = frame[frame["seed"].notna()]
        counts = trained.groupby("Methods", sort=False)["seed"].nunique()
        if len(counts):
            by_n: dict[int, list[str]] = {}
            for label, n in counts.items():
                by_n.setdefault(int(n), []).append(label)
            lines.append(f"- Seeds per row ({dataset}): " + "; ".join(
                f"{', '.join(labels)}: n = {n}" for n, labels in sorted(by_n.items(), reverse=True)) + ".")
        floor = noise_floor(trained)
        if floor:
            lines.append(f"- Noise floor ({dataset}): the baseline's seed std is {floor[0]:.2f} mIoU over "
                         f"{floor[1]} seeds (95 % interval {floor[2]:.2f}–{floor[3]:.2f}).")
    lines.append("- A difference is read as beyond the seed noise only when its paired mean exceeds 2 SE over the "
                 "seeds both rows ran (the spread table's *); a row with one seed is not judged.")
    lines.append("- Why BPKD lands where it does on the demo: [docs/bpkd.md](docs/bpkd.md).")
    return "\n".join(lines)


def render(metrics_dir: str | Path, datasets: list[str], pairs: list[str], methods: list[str],
           level: int = 1, seeds: list[int] = (0,), released: list[str] = (),
           baseline_seeds: list[int] | None = None, same_compute_seeds: list[int] = (),
           source: str | None = None, gains: bool = True, title: str = "Results") -> str:
    """The tables document; ``level`` is the heading level of its title (README embeds it lower).
    ``methods``: the distilled students trained here; each of ``released`` gets its row too,
    read from its one evaluation (:func:`method_rows`). ``baseline_seeds`` (default:
    ``seeds``) are the baseline student's, ``seeds`` the methods',
    ``same_compute_seeds`` the same-compute baseline's (none: no such row). ``source``:
    where the numbers come from, when not this run's ``metrics/``; ``gains``: with the
    gains table (Δ against the baseline's mean; README leaves it to the paired spread
    table when it shows a study); ``title``: the heading's text."""
    metrics_dir = Path(metrics_dir)
    seeds = list(seeds)
    baseline_seeds = seeds if baseline_seeds is None else list(baseline_seeds)
    trained = "baseline" not in released or any(m not in released for m in methods)
    methods = method_rows(methods, released)
    several = trained and (len(seeds) > 1 or ("baseline" not in released and len(baseline_seeds) > 1))
    h = "#" * level
    parts = [f"{h} {title}", "",
             (source + " " if source else "Regenerated by the `report` stage from `metrics/`; ")
             + "`—` marks a run that has not happened.", "",
             COMPLEXITY_CAPTION, ""]
    caption = trained and _seeds_caption(seeds, [] if "baseline" in released else baseline_seeds, gains)
    if caption:
        parts += [caption, ""]
    frames = {dataset: runs_frame(metrics_dir, dataset, pairs, methods, seeds, released, baseline_seeds,
                                  same_compute_seeds) for dataset in datasets}
    unreleased = {dataset: _unreleased(metrics_dir, dataset, pairs, methods, released) for dataset in datasets}
    parts += [_reading(datasets, frames, unreleased), ""]
    for dataset in datasets:
        runs = frames[dataset]
        frame = dataset_frame(metrics_dir, dataset, pairs, methods, runs, bool(same_compute_seeds))
        parts += [f"{h}# {DATASET_TITLES.get(dataset, dataset)}", "", markdown_table(with_spread(frame)), ""]
        if dataset in seed_tables():
            caption, table = comparison_table(frame, dataset, several_seeds=several)
            parts += [caption, "", table, ""]
        if dataset in peer_tables() and methods:  # a dataset the paper does not report: a peer's table
            for pair in pairs:
                label = f"{ARCHS[PAIRS[pair].teacher].name} → {ARCHS[PAIRS[pair].student].name}"
                parts += peer_section(runs, dataset, pair, label)
        noise = bool((frame.loc[frame["model"] == "baseline", "n"] > 1).any())
        if gains and methods:
            parts += [GAINS_NOISE_CAPTION if noise else GAINS_CAPTION, "", gains_table(frame, methods), ""]
        parts += [f"Boundaries ({_band_caption(frame)}; BF: boundary F-score, 2 px tolerance):", "",
                  markdown_table(frame, BOUNDARY_COLUMNS), ""]
        if several:
            caption, table = spread_table(runs)
            parts += [caption, "", table, "", noise_sentence(runs), ""]
    return "\n".join(parts)
