"""Pascal Context (59 classes): VOC2010 + the Context labels -> mmseg's
``PascalContextDataset59`` layout.

mmseg's own converter reads ``trainval_merged.json`` through the ``detail`` API, which
is not on PyPI. The same labels are published by the Pascal Context site as one MATLAB
file per image, which scipy reads. Raw (``data/raw/pascal_context59``)::

    VOCdevkit/VOC2010/JPEGImages/<name>.jpg               VOCtrainval_03-May-2010.tar
    VOCdevkit/VOC2010/ImageSets/Main/{train,val}.txt      (same tar: the split)
    trainval/<name>.mat                                   trainval.tar.gz (Pascal Context)
    labels.txt                                            the 459 classes, "<id>: <name>"

Each ``.mat`` holds ``LabelMap`` (uint16): 0 = unlabelled, else an id of labels.txt.
The 59 classes are those of mmseg's ``PascalContextDataset59`` (matched by name, in its
order); written labels hold 0 for unlabelled pixels and every other class (ignored
after ``reduce_zero_label``) and 1..59 for the 59 classes. Prepared::

    JPEGImages/<name>.jpg                      links
    SegmentationClassContext/<name>.png
    ImageSets/SegmentationContext/{train,val}.txt

The split is VOC2010's train/val (4998/5105 images, every one of them labelled);
mmseg's ``detail``-based split leaves out 3 of them (4996/5104).
"""
from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from .raw import Linker, Piece, label_problem, parallel

SPLITS = ("train", "val")
VOC = "VOCdevkit/VOC2010"
VOC_SITE = "http://host.robots.ox.ac.uk/pascal/VOC/voc2010/"
CONTEXT_SITE = "https://cs.stanford.edu/~roozbeh/pascal-context/"
PIECES = (
    Piece(f"{VOC}/JPEGImages", "images, <name>.jpg", "VOCtrainval_03-May-2010.tar", VOC_SITE),
    Piece(f"{VOC}/ImageSets/Main/train.txt", "train split", "VOCtrainval_03-May-2010.tar", VOC_SITE),
    Piece(f"{VOC}/ImageSets/Main/val.txt", "val split", "VOCtrainval_03-May-2010.tar", VOC_SITE),
    Piece("trainval", "labels, <name>.mat", "trainval.tar.gz", CONTEXT_SITE),
    Piece("labels.txt", "the 459 class names, '<id>: <name>' per line", "labels.txt", CONTEXT_SITE),
)
_LINE = re.compile(r"^\s*(\d+)\s*:\s*(\S.*?)\s*$")


def classes59() -> tuple[str, ...]:
    from mmseg.datasets import PascalContextDataset59

    return tuple(PascalContextDataset59.METAINFO["classes"])


def label_table(labels_txt: Path) -> tuple[np.ndarray, np.ndarray]:
    """(lookup 459-class id -> 0..59, which uint16 values are valid ids) from labels.txt."""
    from .validate import DataError

    ids: dict[str, int] = {}
    for number, line in enumerate(labels_txt.read_text().splitlines(), 1):
        if not line.strip():
            continue
        match = _LINE.match(line)
        if not match:
            raise DataError([f"{labels_txt}: line {number} is {line!r}; expected '<id>: <class name>'"])
        ids[match.group(2)] = int(match.group(1))
    missing = [name for name in classes59() if name not in ids]
    if missing:
        raise DataError([f"{labels_txt}: no line for the class(es) {', '.join(missing)}; expected the 459 "
                         f"Pascal Context classes, among them the 59 of mmseg's PascalContextDataset59"])
    if max(ids.values()) > 65535:
        raise DataError([f"{labels_txt}: class id {max(ids.values())}; expected ids below 65536 (uint16 labels)"])
    lut = np.zeros(65536, np.uint8)
    valid = np.zeros(65536, bool)
    valid[0] = True  # unlabelled
    valid[list(ids.values())] = True
    for k, name in enumerate(classes59(), 1):
        lut[ids[name]] = k
    return lut, valid


def _split(raw: Path, split: str) -> tuple[list[str], list[str]]:
    listing = raw / VOC / "ImageSets" / "Main" / f"{split}.txt"
    names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    problems = [] if names else [f"{listing}: empty; expected the names of VOC2010's {split} images"]
    return names, problems


def _read_mat(path: Path) -> np.ndarray:
    import scipy.io

    return scipy.io.loadmat(str(path))["LabelMap"]


def convert(raw: Path, out: Path) -> dict:
    """Write the prepared layout under ``out`` (a fresh temporary folder); returns what
    ``dataset.json`` records; raises :class:`~bpkd.datasets.validate.DataError` (naming
    raw files). ``prepare`` has checked the download's :data:`PIECES` before."""
    from .validate import DataError

    lut, valid = label_table(raw / "labels.txt")
    link = Linker()
    images, mats = raw / VOC / "JPEGImages", raw / "trainval"
    problems, splits, jobs = [], {}, []
    for split in SPLITS:
        names, found = _split(raw, split)
        problems += found
        splits[split] = names
        for name in names:
            img, mat = images / f"{name}.jpg", mats / f"{name}.mat"
            if not img.is_file():
                problems.append(f"{raw / VOC / 'ImageSets/Main' / (split + '.txt')}: lists {name}, but {img} is "
                                f"missing; expected every listed image in JPEGImages")
            elif not mat.is_file():
                problems.append(f"{img}: image without label; expected {mat}")
            else:
                jobs.append((name, img, mat))
    if problems:
        raise DataError(problems)

    def one(job) -> list[str]:
        name, img, mat = job
        try:
            ids = _read_mat(mat)
        except KeyError:
            return [f"{mat}: no variable 'LabelMap'; expected a Pascal Context label file"]
        except Exception as e:  # scipy raises several types for a damaged file
            return [f"{mat}: cannot be read as a MATLAB file ({type(e).__name__}); expected a Pascal Context "
                    f"label file with a 'LabelMap'"]
        if ids.ndim != 2 or ids.dtype.kind not in "ui":
            return [f"{mat}: LabelMap is {ids.dtype} of shape {ids.shape}; expected a 2-D integer map"]
        bad = (ids < 0) | (ids > 65535)
        if not bad.any():
            ids = ids.astype(np.uint16)
            bad = ~valid[ids]
        problems = label_problem(mat, ids, bad, "LabelMap value(s)", f"0 (unlabelled) or a class id of "
                                 f"{raw / 'labels.txt'}", img, ".jpg")
        if problems:
            return problems
        target = out / "SegmentationClassContext" / f"{name}.png"
        if not cv2.imwrite(str(target), lut[ids]):
            raise OSError(f"could not write {target}")
        link(img, out / "JPEGImages" / f"{name}.jpg")
        return []

    (out / "SegmentationClassContext").mkdir(parents=True, exist_ok=True)
    (out / "JPEGImages").mkdir(parents=True, exist_ok=True)
    # An image in both lists is converted once.
    problems = parallel(one, list({job[0]: job for job in jobs}.values()))
    if problems:
        raise DataError(problems)
    lists = out / "ImageSets" / "SegmentationContext"
    lists.mkdir(parents=True)
    for split, names in splits.items():
        (lists / f"{split}.txt").write_text("".join(f"{n}\n" for n in names))
    return dict(source="VOC2010 JPEGImages + Pascal Context trainval/*.mat (459 classes) -> the 59 of "
                       "PascalContextDataset59; split: VOC2010 ImageSets/Main")
