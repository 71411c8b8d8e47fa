"""ADE20K (SceneParsing 150): the raw download -> mmseg's ``ADE20KDataset`` layout.

Raw (``data/raw/ade20k``, ADEChallengeData2016.zip extracted as it comes)::

    ADEChallengeData2016/images/{training,validation}/<name>.jpg
    ADEChallengeData2016/annotations/{training,validation}/<name>.png

The download is already in mmseg's layout (labels 0 = unlabelled, 1..150, read with
``reduce_zero_label``): both images and labels are linked as they are.
"""
from __future__ import annotations

from pathlib import Path

from .raw import Linker, Piece, pair_up

SPLITS = (("train", "training"), ("val", "validation"))
ROOT = "ADEChallengeData2016"
SITE = "http://sceneparsing.csail.mit.edu"
PIECES = tuple(Piece(f"{ROOT}/{kind}/{folder}", what, "ADEChallengeData2016.zip", SITE)
               for kind, what in (("images", "images, <name>.jpg"), ("annotations", "labels, <name>.png"))
               for _, folder in SPLITS)


def convert(raw: Path, out: Path) -> dict:
    """Link the raw files into ``out`` (a fresh temporary folder); returns what
    ``dataset.json`` records; raises :class:`~bpkd.datasets.validate.DataError` (naming
    raw files). ``prepare`` has checked the download's :data:`PIECES` before."""
    from .validate import DataError

    link = Linker()
    problems, jobs = [], []
    for _, folder in SPLITS:
        img_dir, lab_dir = raw / ROOT / "images" / folder, raw / ROOT / "annotations" / folder
        images = {p.stem: p for p in img_dir.glob("*.jpg")}
        labels = {p.stem: p for p in lab_dir.glob("*.png")}
        if not images:
            problems.append(f"{img_dir}: no .jpg images; expected the {folder} images of {ROOT}")
        pairs, found = pair_up(images, labels, lambda name: img_dir / f"{name}.jpg",
                               lambda name: lab_dir / f"{name}.png")
        problems += found
        for _, img, lab in pairs:
            jobs += [(img, out / "images" / folder / img.name), (lab, out / "annotations" / folder / lab.name)]
    if problems:
        raise DataError(problems)
    for src, dst in jobs:
        link(src, dst)
    # Label values, sizes and readability are checked by validate_layout on the links.
    return dict(source="ADEChallengeData2016 images + annotations, linked as they are")
