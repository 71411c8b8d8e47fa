"""Refresh the results block of README.md between its two markers.

Only the text between ``<!-- results:start -->`` and ``<!-- results:end -->`` is
replaced, so the rest of the README stays hand-written; the file is rewritten
atomically.
"""
from __future__ import annotations

from pathlib import Path

from ..atomic import write_text
from ..errors import UserError

START, END = "<!-- results:start -->", "<!-- results:end -->"


class MarkersMissing(UserError, ValueError):
    """The README has no results block to refresh."""


def refresh(readme: str | Path, block: str) -> None:
    path = Path(readme)
    text = path.read_text()
    i, j = text.find(START), text.find(END)
    if i < 0 or j < i:
        raise MarkersMissing(f"{path}: expected a '{START}' line followed by a '{END}' line to put the results between")
    write_text(path, text[:i + len(START)] + "\n" + block.strip() + "\n" + text[j:])
