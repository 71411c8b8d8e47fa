"""What the converters of the real datasets share: the missing-download error, linking
instead of copying, and converting many files at once.

A real dataset is downloaded by hand (registration, licence, tens of GB) and placed
under ``data/raw/<dataset>``; ``prepare`` converts it into mmseg's layout under
``data/prepared/<dataset>``. Images (and labels that need no conversion) are linked,
not copied: a prepared Cityscapes costs only its label maps in extra disk space.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, TypeVar

from ..errors import UserError

T = TypeVar("T")


class RawDataMissing(UserError, RuntimeError):
    """The user has not placed (all of) a real dataset's raw download yet."""


@dataclass(frozen=True)
class Piece:
    """One part of a raw download: where it must be (relative to the raw folder), what
    it is, and which file of which site provides it."""

    path: str
    what: str
    download: str
    site: str


def require(dataset: str, raw: Path, pieces: Iterable[Piece]) -> None:
    """Raise :class:`RawDataMissing` when any of ``pieces`` is absent under ``raw``; the
    message says what to download from where, and where each part must end up."""
    pieces = list(pieces)
    missing = [p for p in pieces if not (raw / p.path).exists()]
    if not missing:
        return
    by_download: dict[tuple[str, str], list[Piece]] = {}
    for p in pieces:
        by_download.setdefault((p.download, p.site), []).append(p)
    steps = "; ".join(f"{download} from {site} -> " + ", ".join(f"{raw / p.path} ({p.what})" for p in parts)
                      for (download, site), parts in by_download.items())
    more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
    raise RawDataMissing(
        f"prepare@{dataset}: raw data missing: {raw / missing[0].path} not found{more}. Download by hand and "
        f"extract under {raw}/ so that these exist: {steps}. Then rerun `dvc repro prepare@{dataset}`.")


class Linker:
    """Places a file at a new path without copying its bytes: a hard link (same
    filesystem), else a symbolic link to the absolute source path (the raw folder on
    another disk). Remembers the fallback so a big dataset does not fail ``link`` per file."""

    def __init__(self) -> None:
        self.symlinks = False

    def __call__(self, src: Path, dst: Path) -> None:
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not self.symlinks:
            try:
                os.link(src, dst)
                return
            except OSError:
                # EXDEV (another filesystem), EPERM (no hard links there), ...
                self.symlinks = True
        os.symlink(Path(src).resolve(), dst)


def parallel(fn: Callable[[T], list[str]], jobs: list[T], workers: int | None = None) -> list[str]:
    """Run ``fn`` on every job in a thread pool (cv2/zlib decode and encode with the GIL
    released) and return the problems it reported, in job order."""
    problems: list[str] = []
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        for found in pool.map(fn, jobs):
            problems += found
    return problems


def pair_up(images: dict[str, Path], labels: dict[str, Path], image_for: Callable[[str], Path],
            label_for: Callable[[str], Path]) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """Match images and labels by key: ``(key, image, label)`` pairs, and one problem per
    orphan naming the file it lacks (``image_for``/``label_for`` give the expected path)."""
    pairs, problems = [], []
    for key in sorted(set(images) | set(labels)):
        if key not in labels:
            problems.append(f"{images[key]}: image without label; expected {label_for(key)}")
        elif key not in images:
            problems.append(f"{labels[key]}: label without image; expected {image_for(key)}")
        else:
            pairs.append((key, images[key], labels[key]))
    return pairs, problems


def label_problem(label: Path, ids, bad, what: str, expected: str, image: Path, image_kind: str) -> list[str]:
    """The first problem of a raw label map ``ids`` read from ``label``: values flagged in
    ``bad`` (``what`` names them, ``expected`` says what is allowed), an unreadable image,
    or an image of another size. Empty when the pair can be converted."""
    import numpy as np
    from PIL import Image

    if bad.any():
        row, col = np.argwhere(bad)[0]
        values = ", ".join(str(v) for v in np.unique(ids[bad])[:5])
        return [f"{label}: {what} {values} (first at row {row}, column {col}); expected {expected}"]
    try:
        with Image.open(image) as im:  # the header only: the full decode is validate's
            w, h = im.size
    except OSError:
        return [f"{image}: cannot be read as an image (empty, truncated or corrupt file); "
                f"expected a {image_kind} image"]
    if (h, w) != ids.shape:
        return [f"{label}: label is {ids.shape[0]}x{ids.shape[1]} (HxW) but its image {image} is {h}x{w}; "
                f"expected the same size"]
    return []
