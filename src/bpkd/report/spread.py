"""Run-to-run spread of the students trained over several seeds.

Methods that share a seed share the student's initialisation and the data order,
so a method is compared to the baseline student and to CWD *paired* over the seeds
both ran: the difference is taken seed by seed, then summarised by its mean and
standard error (SE = sample std / sqrt(n)). A difference is marked when its mean
exceeds twice its SE, i.e. the paired t statistic |t| > 2; scipy's two-sided paired
t-test gives its p-value beside it (with n = 3 seeds, |t| > 2 is p < 0.18: a mark
means "larger than the seed noise", not a significance claim at 5 %). By default
the methods run one seed and the baseline three: a difference over one shared seed
is shown as it is, with no standard error (the caption says so).
"""
from __future__ import annotations

import pandas as pd
from scipy import stats
from tabulate import tabulate

from .cells import MISSING

MARK = "*"
CAPTION = ("Spread over seeds (mIoU, %): mean ± sample standard deviation (n runs); Δ: the paired difference "
           "over the seeds both ran, mean ± standard error, p of scipy's two-sided paired t-test; "
           f"{MARK}: |mean| > 2 SE.")


def paired(a: pd.Series, b: pd.Series) -> dict | None:
    """The paired difference ``a - b`` over the seeds (index) both have; None without a
    shared seed, the plain difference (``se`` None) with one."""
    both = pd.concat([a, b], axis=1, join="inner").dropna()
    if both.empty:
        return None
    d = both.iloc[:, 0].astype(float) - both.iloc[:, 1].astype(float)
    if len(both) == 1:
        return {"mean": float(d.iloc[0]), "se": None, "n": 1, "p": None, "marked": False, "seed": int(both.index[0])}
    mean, se = float(d.mean()), float(stats.sem(d))
    if se == 0.0:  # identical differences: the t-test is undefined, the mark is not
        p = 0.0 if mean != 0.0 else 1.0
    else:
        p = float(stats.ttest_rel(both.iloc[:, 0].astype(float), both.iloc[:, 1].astype(float)).pvalue)
    return {"mean": mean, "se": se, "n": len(d), "p": p, "marked": abs(mean) > 2 * se}


def delta_cell(d: dict | None) -> str:
    """A paired difference as the tables show it: mean ± SE (p), marked beyond 2 SE."""
    if d is None:
        return MISSING
    if d["se"] is None:
        return f"{d['mean']:+.2f} (seed {d['seed']} only)"
    return f"{d['mean']:+.2f} ± {d['se']:.2f} (p {d['p']:.2f}){' ' + MARK if d['marked'] else ''}"


def _spread(values: pd.Series) -> str:
    v = values.dropna().astype(float)
    if v.empty:
        return MISSING
    std = f"{v.std(ddof=1):.2f}" if len(v) > 1 else MISSING
    return f"{v.mean():.2f} ± {std} ({len(v)})"


def _cost(group: pd.DataFrame, model: str) -> float | None:
    """Median training wall time of ``model``'s runs / the baseline's, on one host class;
    None where either has no cost record or the runs span several host classes. The
    median, not the mean: a busy host only ever slows a run, so one run that shared the
    cores would pull a mean up. A run resumed from a checkpoint (``first_iter`` > 0)
    timed only its last part: it is left out (its score is not)."""
    if "wall_s" not in group:
        return None
    if "first_iter" in group:
        group = group[~(group["first_iter"].astype(float) > 0)]
    mine, base = group[group["model"] == model], group[group["model"] == "baseline"]
    both = pd.concat([mine, base])
    if (mine.empty or mine["wall_s"].isna().any() or base.empty or base["wall_s"].isna().any()
            or both["host_class"].nunique() != 1):
        return None
    return float(mine["wall_s"].astype(float).median() / base["wall_s"].astype(float).median())


def spread_rows(runs: pd.DataFrame, metric: str = "mIoU(%)") -> list[dict]:
    """Per pair and model: the spread, the paired differences to the baseline and CWD,
    and the training cost relative to the baseline's (:func:`_cost`)."""
    rows = []
    for pair, group in runs.groupby("pair", sort=False):
        by_model = {m: g.set_index("seed")[metric] for m, g in group.groupby("model", sort=False)}
        for model, values in by_model.items():
            if model == "teacher":
                continue  # one given run: nothing to pair
            rows.append({"pair": pair, "model": model, "Methods": group[group["model"] == model]["Methods"].iloc[0],
                         "spread": _spread(values),
                         "vs_baseline": paired(values, by_model["baseline"]) if model != "baseline"
                         and "baseline" in by_model else None,
                         "vs_cwd": paired(values, by_model["cwd"]) if model != "cwd" and "cwd" in by_model else None,
                         "cost": _cost(group, model)})
    return rows


def _hosts(runs: pd.DataFrame) -> str:
    hosts = sorted({h for h in runs.get("host_class", pd.Series(dtype=object)).dropna()})
    return ", ".join(hosts) if hosts else "no cost record"


def noise_sentence(runs: pd.DataFrame, metric: str = "mIoU(%)") -> str:
    """One generated sentence: which paired differences exceed the seed noise (|mean| >
    2 SE) and which do not; differences over one shared seed are not judged."""
    above, within, single = [], [], []
    for r in spread_rows(runs, metric):
        for ref, key in (("S", "vs_baseline"), ("CWD", "vs_cwd")):
            d = r[key]
            if d is None or (key == "vs_cwd" and r["model"] == "baseline"):
                continue
            if d["se"] is None:
                single.append(r["Methods"])
                continue
            (above if d["marked"] else within).append(
                f"{r['Methods']} vs {ref} {d['mean']:+.2f} ± {d['se']:.2f} (n={d['n']})")
    parts = [f"Beyond the seed noise ({MARK}, |Δ| > 2 SE): {'; '.join(above) if above else 'none'}.",
             f"Within it: {'; '.join(within) if within else 'none'}."]
    if single:
        parts.append(f"Not judged (one shared seed): {', '.join(dict.fromkeys(single))}.")
    return " ".join(parts)


def _one_seed_caption(found: list[dict]) -> str:
    """Names the students whose Δ rests on one shared seed (the methods, by default)."""
    single = [r for r in found if r["model"] != "baseline"
              and any(d is not None and d["se"] is None for d in (r["vs_baseline"], r["vs_cwd"]))]
    if not single:
        return ""
    seeds = sorted({d["seed"] for r in single for d in (r["vs_baseline"], r["vs_cwd"]) if d and d["se"] is None})
    methods = [r for r in found if r["model"] != "baseline"]
    who = "The distilled students" if len(single) == len(methods) else ", ".join(r["Methods"] for r in single)
    return (f" {who} ran one seed ({', '.join(map(str, seeds))}): a Δ over one shared seed is the plain "
            "difference on that seed, with no standard error or test, so it is not judged against the noise.")


def spread_table(runs: pd.DataFrame, metric: str = "mIoU(%)") -> tuple[str, str]:
    """``(caption, markdown table)`` from :func:`bpkd.report.tables.runs_frame`."""
    found = spread_rows(runs, metric)
    rows = [[r["pair"], r["Methods"], r["spread"], delta_cell(r["vs_baseline"]), delta_cell(r["vs_cwd"]),
             MISSING if r["cost"] is None else f"{r['cost']:.2f}×"] for r in found]
    headers = ["Pair", "Methods", f"{metric} mean ± std (n)", "Δ vs S (paired)", "Δ vs CWD (paired)", "train time vs S"]
    caption = (CAPTION + f" Train time vs S: the training stage's median wall time over its seeds ÷ the baseline "
               f"student's (metrics/cost/; host: {_hosts(runs)}; a run resumed after an interruption is left out).")
    return caption + _one_seed_caption(found), tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
