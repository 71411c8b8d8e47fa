"""The paper's reported numbers beside the measured ones.

``seed_tables.yaml`` next to this module holds the three tables of the paper's README
(Liu et al., "BPKD: Boundary Privileged Knowledge Distillation for Semantic
Segmentation", WACV 2024, arXiv:2306.08075; github.com/AkideLiu/BPKD, "Results and
models"): FLOPs, parameters, mIoU and mAcc per dataset, pair and row, as printed.
It is the one place these numbers live (``weights/registry.yaml`` says where each
released file is, not what it scored); ``tests/test_seed_tables.py`` checks it
against the paper's README.

For a dataset the paper reports, :func:`comparison_table` puts each measured
mIoU/mAcc (the mean over seeds, as in the other tables) beside the reported one,
with the difference, and marks the rows whose mIoU is more than
:data:`MARK_ABOVE` points away.
"""
from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd
import yaml
from tabulate import tabulate

from ..errors import UserError
from ..models.pairs import PAIRS
from .cells import number

SEED_TABLES_FILE = Path(__file__).with_name("seed_tables.yaml")
DATASETS = ("cityscapes", "ade20k", "pascal_context59")
ROWS = ("teacher", "baseline", "skds", "ifvd", "cirkd", "cwd", "bpkd")
FIELDS = ("flops_g", "params_m", "miou", "macc")
MARK_ABOVE = 0.5  # mIoU points; the threshold for "not reproduced"
MARK = "†"


class SeedTablesError(UserError, ValueError):
    """``seed_tables.yaml`` is malformed."""


def _fail(key: str, expected: str, got) -> SeedTablesError:
    return SeedTablesError(f"{SEED_TABLES_FILE}: {key}: expected {expected}, got {got!r}")


def validate(raw) -> dict[str, dict[str, dict[str, dict[str, float | None]]]]:
    """``raw`` (the parsed YAML) checked and with every number a float; an error names the key."""
    if not isinstance(raw, dict):
        raise _fail("top level", "a mapping of datasets", raw)
    tables = {}
    for dataset, pairs in raw.items():
        if dataset not in DATASETS:
            raise _fail(str(dataset), f"one of {list(DATASETS)}", dataset)
        if not isinstance(pairs, dict) or not pairs or set(pairs) - set(PAIRS):
            raise _fail(dataset, f"a mapping of pairs out of {list(PAIRS)}", pairs)
        tables[dataset] = {}
        for pair, rows in pairs.items():
            if not isinstance(rows, dict) or set(rows) != set(ROWS):
                raise _fail(f"{dataset}.{pair}", f"the rows {list(ROWS)}", rows)
            tables[dataset][pair] = {}
            for row, fields in rows.items():
                if not isinstance(fields, dict) or set(fields) != set(FIELDS):
                    raise _fail(f"{dataset}.{pair}.{row}", f"the fields {list(FIELDS)}", fields)
                for field, value in fields.items():
                    # bool is an int to Python, and a YAML `yes` would slip through as 1.0
                    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                        raise _fail(f"{dataset}.{pair}.{row}.{field}", "a number or null", value)
                tables[dataset][pair][row] = {f: None if v is None else float(v) for f, v in fields.items()}
    return tables


@functools.cache
def seed_tables() -> dict[str, dict[str, dict[str, dict[str, float | None]]]]:
    """``{dataset: {pair: {row: {field: number or None}}}}``, rows as :data:`ROWS`."""
    return validate(yaml.safe_load(SEED_TABLES_FILE.read_text()))


def _delta(measured, reported) -> float | None:
    if measured is None or reported is None or pd.isna(measured):
        return None
    # Rounded as shown, so that the mark never disagrees with the printed difference
    # (74.7312 - 74.23 prints +0.50 and is not marked).
    return round(float(measured) - reported, 2)


def comparison_table(frame: pd.DataFrame, dataset: str, several_seeds: bool = False) -> tuple[str, str]:
    """``(caption, markdown table)``: every row of ``frame``
    (:func:`bpkd.report.tables.dataset_frame`) with its measured and reported mIoU/mAcc
    and their difference. A row not measured keeps its reported numbers and shows
    ``—``, as in the seed-layout table, so the table also says what is left to run."""
    reported = seed_tables()[dataset]
    rows = []
    for r in frame.to_dict("records"):
        paper = reported.get(r["pair"], {}).get(r["model"], {})
        d_miou = _delta(r["mIoU(%)"], paper.get("miou"))
        d_macc = _delta(r["mAcc(%)"], paper.get("macc"))
        marked = d_miou is not None and abs(d_miou) > MARK_ABOVE
        rows.append([r["pair"], r["Methods"],
                     number(r["mIoU(%)"]), number(paper.get("miou")),
                     number(d_miou, "+.2f") + (f" {MARK}" if marked else ""),
                     number(r["mAcc(%)"]), number(paper.get("macc")), number(d_macc, "+.2f")])
    headers = ["Pair", "Methods", "mIoU(%)", "reported mIoU(%)", "Δ mIoU", "mAcc(%)", "reported mAcc(%)", "Δ mAcc"]
    caption = ("Against the paper's reported numbers (its README's table): Δ = measured − reported, in points"
               + (", a trained student's measured number being its mean over seeds" if several_seeds else "")
               + f"; {MARK}: |Δ mIoU| > {MARK_ABOVE}; `—` in the measured columns: not run here.")
    return caption, tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
