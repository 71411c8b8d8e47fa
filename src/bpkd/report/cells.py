"""How one number is printed in a report table: the one formatter every table uses."""
from __future__ import annotations

import pandas as pd

# A run that has not happened (or a number the seed does not report) prints this, never 0.
MISSING = "—"


def number(v, spec: str = ".2f") -> str:
    """``v`` formatted with ``spec``, or :data:`MISSING` for None/NaN."""
    return MISSING if v is None or pd.isna(v) else format(v, spec)
