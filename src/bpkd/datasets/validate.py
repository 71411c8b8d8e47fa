"""Check a dataset in mmseg's layout before anything trains on it.

mmseg itself does not check its inputs: a label value outside the class range is
silently counted as a class that does not exist (or crashes the loss on a GPU with
a device-side assert, hours into a run), a label of the wrong size is cropped
together with its image into a misaligned pair, and an image without a label is
skipped or fails at the first epoch that draws it. ``prepare`` calls
:func:`validate_layout` on what it produced before the output is renamed into
place, so a bad dataset never appears under ``data/prepared``; a dataset converted
by hand can be checked the same way::

    python -m bpkd.datasets.validate --dataset cityscapes data/prepared/cityscapes

Every image and label is decoded once (cv2, in a thread pool: decoding releases the
GIL), and the value check is one vectorised comparison per label map.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..errors import UserError
from .raw import parallel
from .specs import DatasetSpec

# How many problems are spelled out in the one-line error message (all are kept
# in ``DataError.problems``).
SHOWN = 3


class DataError(UserError, ValueError):
    """A dataset has files that mmseg cannot train or evaluate on correctly."""

    def __init__(self, problems: list[str], note: str = "") -> None:
        self.problems = list(problems)
        message = self.problems[0]
        more = len(self.problems) - 1
        if more:
            listed = "; ".join(self.problems[1:SHOWN])
            message += f" (and {more} more problem{'s' * (more > 1)}: {listed}{'; ...' if more >= SHOWN else ''})"
        if note:
            message += f". {note}"
        super().__init__(message)


def _label_range(spec: DatasetSpec) -> tuple[int, str]:
    """Exclusive upper bound of the values a label file may hold, and how to say it.

    With ``reduce_zero_label`` (ADE20K, Pascal Context 59) mmseg maps the file's 0 to
    the ignore index and subtracts 1 from the rest, so the file holds 0..num_classes.
    """
    if spec.reduce_zero_label:
        return spec.num_classes + 1, (f"0 (unlabelled; reduce_zero_label) or class values 1..{spec.num_classes} "
                                      f"of {spec.name}, or its ignore index {spec.ignore_index}")
    return spec.num_classes, (f"class indices 0..{spec.num_classes - 1} of {spec.name} "
                              f"or its ignore index {spec.ignore_index}")


def _read_label(path: Path) -> np.ndarray | None:
    label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if label is not None and label.ndim == 3:
        # cv2 expands a palette PNG (e.g. Pascal VOC's) to colours; mmseg reads such a
        # file with Pillow, which yields the palette indices: those are the labels.
        from PIL import Image

        with Image.open(path) as im:
            if im.mode == "P":
                return np.asarray(im)
    return label


def _check_pair(image: Path, label: Path, spec: DatasetSpec, shown_image: str, shown_label: str) -> list[str]:
    """Problems of one image/label pair (empty if it is fine)."""
    problems = []
    # IMREAD_COLOR is how mmseg's LoadImageFromFile decodes images (so the size is
    # the one it will see, EXIF orientation included).
    img = cv2.imread(str(image), cv2.IMREAD_COLOR)
    if img is None:
        problems.append(f"{shown_image}: cannot be read as an image (empty, truncated or corrupt file); "
                        f"expected a readable {spec.img_suffix} image")
    lab = _read_label(label)
    if lab is None:
        problems.append(f"{shown_label}: cannot be read as an image (empty, truncated or corrupt file); "
                        f"expected a readable single-channel {spec.seg_map_suffix} label map")
        return problems
    if lab.ndim != 2:
        problems.append(f"{shown_label}: label map has {lab.shape[2]} channels; expected a single-channel map "
                        f"of class indices (colour-coded labels must be converted to indices first)")
        return problems
    if lab.dtype not in (np.uint8, np.uint16):
        problems.append(f"{shown_label}: label map has dtype {lab.dtype}; expected 8- or 16-bit unsigned integers")
        return problems
    if img is not None and img.shape[:2] != lab.shape:
        problems.append(f"{shown_label}: label is {lab.shape[0]}x{lab.shape[1]} (HxW) but its image "
                        f"{shown_image} is {img.shape[0]}x{img.shape[1]}; expected the same size")
    upper, allowed = _label_range(spec)
    bad = (lab >= upper) & (lab != spec.ignore_index)
    if bad.any():
        values = np.unique(lab[bad])
        row, col = np.argwhere(bad)[0]
        listed = ", ".join(str(v) for v in values[:5]) + (", ..." if len(values) > 5 else "")
        problems.append(f"{shown_label}: label value{'s' * (len(values) > 1)} {listed} in {int(bad.sum())} "
                        f"pixel{'s' * (int(bad.sum()) > 1)} (first at row {row}, column {col}); expected {allowed}")
    return problems


def _files(folder: Path, suffix: str) -> dict[str, Path]:
    """Files under ``folder`` (recursively, as mmseg lists them) ending in ``suffix``,
    keyed by their relative path without the suffix."""
    found = {}
    for path in folder.rglob(f"*{suffix}"):
        if path.is_file():
            found[path.relative_to(folder).as_posix()[: -len(suffix)]] = path
    return found


def _split_pairs(root: Path, spec: DatasetSpec, split: str, shown: str) -> tuple[list[tuple[Path, Path]], list[str]]:
    """The (image, label) pairs of one split, and the problems found listing them."""
    prefix = spec.prefix(split)
    img_dir, ann_dir = root / prefix["img_path"], root / prefix["seg_map_path"]
    problems = [f"{shown}/{d.relative_to(root).as_posix()}: folder missing; expected the {split} split's {what}"
                for d, what in ((img_dir, "images"), (ann_dir, "labels")) if not d.is_dir()]
    if problems:
        return [], problems
    ann_file = spec.extra.get(f"{split}_ann_file")
    if ann_file:
        # The split is a list of names (Pascal Context): images and labels of other
        # splits share the folders, so only the listed names must have both.
        listing = root / ann_file
        if not listing.is_file():
            return [], [f"{shown}/{ann_file}: missing; expected the list of {split} names"]
        names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
        images = {n: img_dir / f"{n}{spec.img_suffix}" for n in names}
        labels = {n: ann_dir / f"{n}{spec.seg_map_suffix}" for n in names}
        images = {n: p for n, p in images.items() if p.is_file()}
        labels = {n: p for n, p in labels.items() if p.is_file()}
        keys = names
    else:
        images, labels = _files(img_dir, spec.img_suffix), _files(ann_dir, spec.seg_map_suffix)
        keys = sorted(set(images) | set(labels))
    rel_img, rel_ann = img_dir.relative_to(root).as_posix(), ann_dir.relative_to(root).as_posix()
    if not keys:
        problems.append(f"{shown}/{rel_img}: no images ending in {spec.img_suffix!r}; "
                        f"expected the {split} split's images")
    pairs = []
    for key in keys:
        if key not in labels:
            problems.append(f"{shown}/{rel_img}/{key}{spec.img_suffix}: image without label; "
                            f"expected {shown}/{rel_ann}/{key}{spec.seg_map_suffix}")
        elif key not in images:
            problems.append(f"{shown}/{rel_ann}/{key}{spec.seg_map_suffix}: label without image; "
                            f"expected {shown}/{rel_img}/{key}{spec.img_suffix}")
        else:
            pairs.append((images[key], labels[key]))
    return pairs, problems


def validate_layout(root: str | Path, spec: DatasetSpec, shown_as: str | Path | None = None,
                    workers: int | None = None, expected: dict[str, int] | None = None,
                    expected_from: str = "") -> dict[str, int]:
    """Check every image/label pair of the dataset at ``root`` (mmseg layout of ``spec``).

    Raises :class:`DataError` listing every problem found, each naming the file (as
    ``shown_as/<relative path>``: ``prepare`` validates a temporary folder but names
    the output the user asked for) and what was expected. With ``expected`` (pairs
    per split), a split with another number of pairs is a problem too, listed after
    the files' (``expected_from`` says where the number comes from). Returns the
    number of pairs per split.
    """
    root = Path(root)
    shown = str(shown_as if shown_as is not None else root).rstrip("/")
    problems: list[str] = []
    jobs = []
    counts = {}
    for split in spec.splits:
        pairs, found = _split_pairs(root, spec, split, shown)
        problems += found
        counts[split] = len(pairs)
        jobs += [(img, lab, f"{shown}/{img.relative_to(root).as_posix()}",
                  f"{shown}/{lab.relative_to(root).as_posix()}") for img, lab in pairs]
    problems += parallel(lambda job: _check_pair(job[0], job[1], spec, job[2], job[3]), jobs, workers)
    for split, want in (expected or {}).items():
        if counts.get(split) != want:
            prefix = spec.prefix(split)
            where = spec.extra.get(f"{split}_ann_file") or prefix["img_path"]
            problems.append(f"{shown}/{where}: {counts.get(split, 0)} {split} image/label pairs; "
                            f"expected {want}{f' ({expected_from})' if expected_from else ''}")
    if problems:
        raise DataError(problems)
    return counts


def main() -> None:
    from .. import cli
    from . import specs

    ap = cli.parser("Check a dataset in mmseg's layout (every image/label pair) before training on it.")
    ap.add_argument("root", help="the dataset folder (e.g. data/prepared/cityscapes)")
    ap.add_argument("--dataset", required=True, choices=sorted(specs.DATASETS))
    args = ap.parse_args()

    def check():
        counts = validate_layout(args.root, specs.get(args.dataset))
        print(f"{args.root}: " + ", ".join(f"{n} {split} pairs" for split, n in counts.items()) + ": OK")

    cli.run(check)


if __name__ == "__main__":
    main()
