"""Cityscapes: the raw download -> mmseg's ``CityscapesDataset`` layout.

Raw (``data/raw/cityscapes``, the two zips extracted as they come)::

    leftImg8bit/{train,val}/<city>/<name>_leftImg8bit.png     leftImg8bit_trainvaltest.zip
    gtFine/{train,val}/<city>/<name>_gtFine_labelIds.png      gtFine_trainvaltest.zip

Prepared: the same tree, images linked, and next to nothing else
``gtFine/<split>/<city>/<name>_gtFine_labelTrainIds.png``: the 19 training classes
0..18 and 255 for everything ignored, the file mmseg's dataset class reads. The
id -> trainId table is cityscapesscripts' own (``helpers.labels``, the table its
``createTrainIdLabelImgs`` uses); applying it to the ``labelIds`` maps gives the same
maps as rasterising the polygon json files, without the json path and in a fraction
of the time. The test split has no public labels and is left out.

What is accepted as a ``labelIds`` map: every value an id of that table, 0..33. Its
one negative id (license plate, -1) is never drawn (``json2labelImg`` skips polygons
of negative id), so no labelIds map holds 255, while a ``labelTrainIds`` map holds 255
wherever no training class is drawn: its background and every void class (ego
vehicle, rectification border and out of roi, along the frame edges). A map holding
255 is therefore rejected as a trainIds map saved under the labelIds name. A map
whose values all lie in 0..18 is accepted: each is a valid id, and a genuine frame
may hold only those (a crop, a view filled by road, building and void), whereas a
trainIds map of a frame without 255 would need every pixel to be one of the 19
training classes.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .raw import Linker, Piece, label_problem, pair_up, parallel

SPLITS = ("train", "val")
IMG_SUFFIX = "_leftImg8bit.png"
RAW_LABEL_SUFFIX = "_gtFine_labelIds.png"
LABEL_SUFFIX = "_gtFine_labelTrainIds.png"
SITE = "https://www.cityscapes-dataset.com/downloads/ (free registration)"
PIECES = tuple(Piece(f"{folder}/{split}", f"{what}, <city>/<name>{suffix}", download, SITE)
               for folder, what, suffix, download in (
                   ("leftImg8bit", "images", IMG_SUFFIX, "leftImg8bit_trainvaltest.zip"),
                   ("gtFine", "fine labels", RAW_LABEL_SUFFIX, "gtFine_trainvaltest.zip"))
               for split in SPLITS)


def train_id_table() -> tuple[np.ndarray, np.ndarray]:
    """(lookup id -> trainId over uint8 values, which uint8 values are valid ids).

    Ids come from cityscapesscripts' label table; its negative id (license plate, -1)
    is never drawn into a labelIds map, so it is no valid value (255 is a trainIds
    map's). Classes whose trainId is 255 or -1 are ignored in training (255).
    """
    from cityscapesscripts.helpers.labels import labels

    lut = np.full(256, 255, np.uint8)
    valid = np.zeros(256, bool)
    for label in labels:
        if label.id < 0:
            continue
        valid[label.id] = True
        lut[label.id] = label.trainId if 0 <= label.trainId < 255 else 255
    return lut, valid


def _pairs(raw: Path, split: str) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """(relative key, image, raw label) of one split, and pairing problems (raw paths)."""
    img_dir, lab_dir = raw / "leftImg8bit" / split, raw / "gtFine" / split
    images = {p.relative_to(img_dir).as_posix()[: -len(IMG_SUFFIX)]: p for p in img_dir.rglob(f"*{IMG_SUFFIX}")}
    labels = {p.relative_to(lab_dir).as_posix()[: -len(RAW_LABEL_SUFFIX)]: p
              for p in lab_dir.rglob(f"*{RAW_LABEL_SUFFIX}")}
    pairs, problems = pair_up(images, labels, lambda key: img_dir / (key + IMG_SUFFIX),
                              lambda key: lab_dir / (key + RAW_LABEL_SUFFIX))
    if not images:
        problems.insert(0, f"{img_dir}: no files ending in {IMG_SUFFIX!r}; expected the {split} images "
                           f"(<city>/<name>{IMG_SUFFIX})")
    return pairs, problems


def convert(raw: Path, out: Path) -> dict:
    """Write the prepared layout under ``out`` (a fresh temporary folder); returns what
    ``dataset.json`` records; raises :class:`~bpkd.datasets.validate.DataError` (naming
    raw files). ``prepare`` has checked the download's :data:`PIECES` before."""
    from .validate import DataError

    lut, valid = train_id_table()
    link = Linker()
    problems, jobs = [], []
    for split in SPLITS:
        pairs, found = _pairs(raw, split)
        problems += found
        jobs += [(img, lab, out / "leftImg8bit" / split / (key + IMG_SUFFIX),
                  out / "gtFine" / split / (key + LABEL_SUFFIX)) for key, img, lab in pairs]
    if problems:
        raise DataError(problems)

    def one(job) -> list[str]:
        img, lab, img_out, lab_out = job
        ids = cv2.imread(str(lab), cv2.IMREAD_UNCHANGED)
        if ids is None:
            return [f"{lab}: cannot be read as an image (empty, truncated or corrupt file); "
                    f"expected a {RAW_LABEL_SUFFIX} label map"]
        if ids.ndim != 2 or ids.dtype != np.uint8:
            return [f"{lab}: {ids.dtype} map with {1 if ids.ndim == 2 else ids.shape[2]} channel(s); expected "
                    f"cityscapes' single-channel 8-bit {RAW_LABEL_SUFFIX} "
                    "(not the _color.png or _instanceIds.png file)"]
        ignored = ids == 255
        if ignored.any():
            problems = label_problem(
                lab, ids, ignored, "value", f"cityscapesscripts' label ids 0..33; no labelIds map holds 255, "
                f"the ignore value of {LABEL_SUFFIX} maps: is it a labelTrainIds map saved under the "
                "labelIds name?", img, IMG_SUFFIX)
        else:
            problems = label_problem(lab, ids, ~valid[ids], "label id(s)", "ids of cityscapesscripts' label "
                                     "table (0..33)", img, IMG_SUFFIX)
        if problems:
            return problems
        lab_out.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(lab_out), lut[ids]):
            raise OSError(f"could not write {lab_out}")
        link(img, img_out)
        return []

    problems = parallel(one, jobs)
    if problems:
        raise DataError(problems)
    return dict(source="cityscapes leftImg8bit + gtFine labelIds -> labelTrainIds (cityscapesscripts' label table)")
