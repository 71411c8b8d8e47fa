"""Per-class IoU of every model of one dataset/pair in one long table
(``class``, ``model``, ``IoU``), so the plots page draws one grouped bar chart
(``grouped_bar`` template: classes along x, one bar per model) instead of one
chart per model.

The inputs are the evaluation stages' per-class files (``bpkd.layout.per_class_json``:
``[{"class": ..., "IoU": ..., "Acc": ...}, ...]``).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path


def collect(models: dict[str, str | Path]) -> list[tuple[str, str, float]]:
    """``[(class, model, IoU), ...]`` in class order, then ``models`` order
    (``{model: its per-class file}``).

    Models without an evaluation yet, or with an empty one (a checkpoint the paper did
    not release for this pair: ``released@`` writes ``[]``), are skipped; every evaluated model must name
    the same classes in the same order (one dataset), otherwise bars would be
    grouped under the wrong class.
    """
    tables: dict[str, list[dict]] = {}
    for model, path in models.items():
        path = Path(path)
        rows = json.loads(path.read_text()) if path.is_file() else []
        if rows:
            tables[model] = rows
    if not tables:
        return []
    classes = [row["class"] for row in next(iter(tables.values()))]
    for model, rows in tables.items():
        if [row["class"] for row in rows] != classes:
            raise ValueError(f"{models[model]}: classes {[r['class'] for r in rows]} "
                             f"differ from {classes}")
    return [(name, model, float(rows[i]["IoU"])) for i, name in enumerate(classes)
            for model, rows in tables.items()]


def write(rows: list[tuple[str, str, float]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["class", "model", "IoU"])
        w.writerows(rows)
