"""Peers' published numbers beside ours, on a dataset the BPKD paper does not report.

``peer_tables.yaml`` next to this module holds, per dataset, other papers' numbers for
the same methods (CamVid: CIRKD's and Af-DCD's READMEs, DeepLabV3-R101 teaching
DeepLabV3-R18 and PSPNet-R18), with where they come from and how they were trained.
Their students are ImageNet-pretrained and trained 40k iterations at full resolution;
ours are trained from scratch on a CPU schedule, so absolute mIoU does not compare. What
does: each method's gain over its own baseline student, and the methods' order.
:func:`peer_table` puts our paired Δ vs S (mean ± SE over seeds,
:func:`bpkd.report.spread.paired`) and rank beside each peer student's Δ and rank, and
:func:`order_sentence` compares the orders over the methods both report (Kendall's τ).
"""
from __future__ import annotations

import functools
from pathlib import Path

import yaml
from scipy import stats
from tabulate import tabulate

from ..errors import UserError
from .cells import MISSING
from .spread import MARK, spread_rows

PEER_TABLES_FILE = Path(__file__).with_name("peer_tables.yaml")
METHODS = ("skds", "ifvd", "cirkd", "cwd", "bpkd")


class PeerTablesError(UserError, ValueError):
    """``peer_tables.yaml`` is malformed."""


def _number(value, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PeerTablesError(f"{PEER_TABLES_FILE}: {key}: expected a number, got {value!r}")
    return float(value)


def validate(raw) -> dict:
    """``raw`` (the parsed YAML) checked, every score a float; an error names the key."""
    if not isinstance(raw, dict):
        raise PeerTablesError(f"{PEER_TABLES_FILE}: top level: expected a mapping of datasets, got {raw!r}")
    tables = {}
    for dataset, entry in raw.items():
        if not isinstance(entry, dict) or set(entry) != {"source", "regime", "split", "teacher", "students"}:
            raise PeerTablesError(f"{PEER_TABLES_FILE}: {dataset}: expected the keys source, regime, split, "
                                  f"teacher, students, got {entry!r}")
        teacher = entry["teacher"]
        if not isinstance(teacher, dict) or set(teacher) != {"name", "miou"}:
            raise PeerTablesError(f"{PEER_TABLES_FILE}: {dataset}.teacher: expected name and miou, got {teacher!r}")
        students = {}
        for name, rows in (entry["students"] or {}).items():
            key = f"{dataset}.students.{name}"
            if not isinstance(rows, dict) or "baseline" not in rows or set(rows) - {"baseline", *METHODS}:
                raise PeerTablesError(f"{PEER_TABLES_FILE}: {key}: expected baseline and any of {list(METHODS)}, "
                                      f"got {rows!r}")
            students[str(name)] = {m: _number(v, f"{key}.{m}") for m, v in rows.items()}
        if not students:
            raise PeerTablesError(f"{PEER_TABLES_FILE}: {dataset}.students: expected at least one student")
        tables[dataset] = {**entry, "teacher": {"name": str(teacher["name"]),
                                                "miou": _number(teacher["miou"], f"{dataset}.teacher.miou")},
                           "students": students}
    return tables


@functools.cache
def peer_tables() -> dict:
    """``{dataset: {source, regime, split, teacher: {name, miou}, students: {name: {row: mIoU}}}}``."""
    return validate(yaml.safe_load(PEER_TABLES_FILE.read_text()))


def _ranks(gains: dict[str, float]) -> dict[str, int]:
    """1 for the largest gain; ties share the better rank."""
    ordered = sorted(gains.values(), reverse=True)
    return {m: ordered.index(g) + 1 for m, g in gains.items()}


def our_gains(runs, pair: str) -> dict[str, dict]:
    """Each distilled method's paired Δ mIoU vs the baseline student of ``pair`` (``runs``:
    :func:`bpkd.report.tables.runs_frame`); methods without a shared seed are left out."""
    return {r["model"]: r["vs_baseline"] for r in spread_rows(runs[runs["pair"] == pair])
            if r["model"] in METHODS and r["vs_baseline"] is not None}


def peer_table(runs, dataset: str, pair: str, our_label: str) -> tuple[str, str]:
    """``(caption, markdown table)``: per method, our Δ vs S (paired over seeds) and its rank,
    beside each peer student's Δ vs its baseline and its rank."""
    peers = peer_tables()[dataset]
    ours = our_gains(runs, pair)
    our_rank = _ranks({m: d["mean"] for m, d in ours.items()})
    peer_gain = {name: {m: v - rows["baseline"] for m, v in rows.items() if m != "baseline"}
                 for name, rows in peers["students"].items()}
    peer_rank = {name: _ranks(g) for name, g in peer_gain.items()}
    from .tables import METHOD_LABELS

    rows = []
    for m in METHODS:
        if m not in ours and not any(m in g for g in peer_gain.values()):
            continue
        d = ours.get(m)
        cell = MISSING if d is None else (f"{d['mean']:+.2f}" if d["se"] is None else
                                          f"{d['mean']:+.2f} ± {d['se']:.2f}{' ' + MARK if d['marked'] else ''}")
        row = [METHOD_LABELS[m], cell, our_rank.get(m, MISSING)]
        for name in peers["students"]:
            g = peer_gain[name].get(m)
            row += [MISSING if g is None else f"{g:+.2f}", peer_rank[name].get(m, MISSING)]
        rows.append([str(c) for c in row])
    headers = ["Methods", f"ours: Δ vs S ({our_label})", "rank"]
    for name in peers["students"]:
        headers += [f"{name}: Δ vs S", "rank"]
    caption = (f"Beside the peers' published numbers ({peers['source']}): {peers['regime']}. Their teacher "
               f"{peers['teacher']['name']} scored {peers['teacher']['miou']:.2f} mIoU and their students' baselines "
               + ", ".join(f"{rows_['baseline']:.2f} ({name})" for name, rows_ in peers["students"].items())
               + f", on the {peers['split']} split as ours. Their regime and networks are not ours, so only the gains "
               "over each one's own baseline student and the methods' order compare, not absolute mIoU. Ours: the "
               f"paired Δ over seeds, mean ± SE ({MARK}: |mean| > 2 SE); theirs: one published number each, "
               f"no spread; `{MISSING}`: not reported. Rank 1: the largest gain.")
    return caption, tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def order_sentence(runs, dataset: str, pair: str) -> str:
    """One generated sentence: our order of the methods the peers also report, theirs, and
    Kendall's τ between ours and each peer student's."""
    from .tables import METHOD_LABELS

    peers = peer_tables()[dataset]
    ours = {m: d["mean"] for m, d in our_gains(runs, pair).items()}
    parts = []
    for name, rows in peers["students"].items():
        shared = [m for m in METHODS if m in ours and m in rows]
        if len(shared) < 2:
            continue
        theirs = {m: rows[m] - rows["baseline"] for m in shared}
        tau = stats.kendalltau([ours[m] for m in shared], [theirs[m] for m in shared]).statistic
        parts.append(f"{name}: {' > '.join(METHOD_LABELS[m] for m in sorted(shared, key=lambda m: -theirs[m]))} "
                     f"(Kendall's τ with ours {tau:+.2f})")
    if not parts:
        return ""
    shared = [m for m in METHODS if m in ours and any(m in r for r in peers["students"].values())]
    return (f"Order of the methods both report, largest gain first: ours "
            f"{' > '.join(METHOD_LABELS[m] for m in sorted(shared, key=lambda m: -ours[m]))}; " + "; ".join(parts)
            + f". With {len(shared)} methods, τ is a description, not a test.")


def section(runs, dataset: str, pair: str, our_label: str) -> list[str]:
    """The lines a report gives the peers on ``dataset``: :func:`peer_table`'s caption and
    table, then :func:`order_sentence`."""
    caption, table = peer_table(runs, dataset, pair, our_label)
    return [caption, "", table, "", order_sentence(runs, dataset, pair), ""]
