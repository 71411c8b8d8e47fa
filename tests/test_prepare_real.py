"""prepare@cityscapes/ade20k/pascal_context59 (issue 7): tiny fake raw downloads in the
official folder structure are converted into the layout mmseg's dataset classes load;
a bad raw file fails naming it; without the download the stage says what to fetch and
leaves nothing behind."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
import yaml

from bpkd.datasets import specs
from bpkd.datasets.prepare import prepare
from bpkd.datasets.raw import RawDataMissing
from bpkd.datasets.validate import DataError
from bpkd.params import Params
from conftest import REPO

H, W = 12, 20
COUNTS = {"train": 3, "val": 2}


def _params(dataset: str, raw: Path, counts=COUNTS) -> Params:
    tree = yaml.safe_load((REPO / "params.yaml").read_text())
    tree["datasets"] = ["synthetic", dataset]
    tree["data"][dataset] = {"raw_dir": str(raw), "expected_counts": dict(counts)}
    return Params(tree)


def _image(path: Path, seed: int, h=H, w=W) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 255, (h, w, 3), np.uint8))


def _png(path: Path, label: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), label)


def _load(dataset: str, root: Path, split: str):
    """The prepared split through mmseg's own dataset class, labels as its pipeline loads them."""
    import mmseg.datasets  # noqa: F401  (registers the classes)
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

    init_default_scope("mmseg")  # mmseg's LoadAnnotations, not mmcv's

    spec = specs.get(dataset)
    cfg = dict(type=spec.mmseg_type, data_root=str(root),
               data_prefix=dict(spec.train_prefix if split == "train" else spec.val_prefix),
               pipeline=[dict(type="LoadImageFromFile"), dict(type="LoadAnnotations")])
    if spec.extra.get(f"{split}_ann_file"):
        cfg["ann_file"] = spec.extra[f"{split}_ann_file"]
    return DATASETS.build(cfg)


# --- fake raw downloads -------------------------------------------------------------

CITY_NAMES = {"train": ["aachen/aachen_000000_000019", "aachen/aachen_000001_000019", "bochum/bochum_000000_000313"],
              "val": ["frankfurt/frankfurt_000000_000294", "lindau/lindau_000000_000019"]}
# labelIds -> trainIds of a few cityscapes classes: unlabeled, road, car, out of roi,
# rectification border (license plate, id -1, is never drawn into a labelIds map)
CITY_IDS = {0: 255, 7: 0, 26: 13, 3: 255, 2: 255}


def _cityscapes(raw: Path) -> Path:
    for split, names in CITY_NAMES.items():
        for i, name in enumerate(names):
            _image(raw / "leftImg8bit" / split / f"{name}_leftImg8bit.png", i)
            ids = np.random.default_rng(i).choice(list(CITY_IDS), (H, W)).astype(np.uint8)
            ids[0, 0], ids[0, 1] = 7, 26
            _png(raw / "gtFine" / split / f"{name}_gtFine_labelIds.png", ids)
            (raw / "gtFine" / split / f"{name}_gtFine_polygons.json").write_text("{}")
    return raw


def _ade20k(raw: Path) -> Path:
    root = raw / "ADEChallengeData2016"
    for split, folder in (("train", "training"), ("val", "validation")):
        for i in range(COUNTS[split]):
            name = f"ADE_{folder[:5]}_{i:08d}"
            _image(root / "images" / folder / f"{name}.jpg", i)
            label = np.random.default_rng(i).integers(0, 151, (H, W)).astype(np.uint8)
            label[0, 0], label[0, 1] = 0, 150
            _png(root / "annotations" / folder / f"{name}.png", label)
    (root / "objectInfo150.txt").write_text("Idx\tRatio\tTrain\tVal\tName\n")
    return raw


def _pascal_classes():
    from mmseg.datasets import PascalContextDataset59

    return PascalContextDataset59.METAINFO["classes"]


def _pascal(raw: Path) -> Path:
    # labels.txt: the 59 classes interleaved with others, so ids and mmseg's order differ.
    names = {}
    for k, name in enumerate(_pascal_classes()):
        names[1 + 2 * k] = f"other{k}"
        names[2 + 2 * k] = name
    raw.mkdir(parents=True)
    (raw / "labels.txt").write_text("".join(f"{i}: {n}\n" for i, n in sorted(names.items())))
    voc = raw / "VOCdevkit" / "VOC2010"
    splits = {"train": ["2008_000002", "2008_000003", "2009_000001"], "val": ["2008_000007", "2010_000001"]}
    for split, listed in splits.items():
        (voc / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
        (voc / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{n}\n" for n in listed))
        for i, name in enumerate(listed):
            _image(voc / "JPEGImages" / f"{name}.jpg", i)
            label = np.random.default_rng(i).choice([0, 1, 2, 4, 118], (H, W)).astype(np.uint16)
            (raw / "trainval").mkdir(exist_ok=True)
            scipy.io.savemat(str(raw / "trainval" / f"{name}.mat"), {"LabelMap": label})
    _image(voc / "JPEGImages" / "2007_000027.jpg", 9)  # VOC images outside the split stay out
    return raw


RAW = {"cityscapes": _cityscapes, "ade20k": _ade20k, "pascal_context59": _pascal}


# --- conversions --------------------------------------------------------------------

def test_cityscapes_label_ids_become_train_ids(tmp_path):
    raw = _cityscapes(tmp_path / "raw")
    out = tmp_path / "prepared" / "cityscapes"
    prepare(_params("cityscapes", raw), "cityscapes", out)
    for split, n in COUNTS.items():
        ds = _load("cityscapes", out, split)
        assert len(ds) == n
        for i in range(n):
            sample = ds[i]
            ids = cv2.imread(str(raw / "gtFine" / split / f"{CITY_NAMES[split][i]}_gtFine_labelIds.png"),
                             cv2.IMREAD_UNCHANGED)
            want = np.vectorize(CITY_IDS.get)(ids)
            assert sample["img_path"].endswith(f"{CITY_NAMES[split][i]}_leftImg8bit.png")
            assert np.array_equal(sample["gt_seg_map"], want)
    img = "leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png"
    assert (out / img).stat().st_ino == (raw / img).stat().st_ino  # linked, not copied
    assert not list(out.rglob("*_gtFine_labelIds.png")) and list(out.rglob("*.json")) == [out / "dataset.json"]


def test_cityscapes_label_ids_up_to_18_only_are_converted(tmp_path):
    """A labelIds map holding no id above 18 (no sky, car, person...) is still a valid
    one (a crop, a view filled by building): converted, not rejected."""
    raw = _cityscapes(tmp_path / "raw")
    name = CITY_NAMES["val"][1]
    ids = np.full((H, W), 11, np.uint8)  # building
    ids[0, :], ids[-2:, :] = 7, 1  # road, ego vehicle
    _png(raw / "gtFine" / "val" / f"{name}_gtFine_labelIds.png", ids)
    out = tmp_path / "prepared" / "cityscapes"
    prepare(_params("cityscapes", raw), "cityscapes", out)
    want = np.full((H, W), 2, np.uint8)  # trainIds: building 2, road 0, ego vehicle ignored
    want[0, :], want[-2:, :] = 0, 255
    got = cv2.imread(str(out / "gtFine" / "val" / f"{name}_gtFine_labelTrainIds.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(got, want)


def test_cityscapes_train_ids_under_the_label_ids_name_are_rejected(tmp_path):
    raw = _cityscapes(tmp_path / "raw")
    lab = raw / "gtFine" / "train" / f"{CITY_NAMES['train'][2]}_gtFine_labelIds.png"
    train_ids = np.zeros((H, W), np.uint8)  # road 0, car 13, ignored 255: a labelTrainIds map
    train_ids[:, :5] = 13
    train_ids[5, 7:] = 255
    _png(lab, train_ids)
    out = tmp_path / "prepared" / "cityscapes"
    with pytest.raises(DataError) as err:
        prepare(_params("cityscapes", raw), "cityscapes", out)
    assert err.value.problems == [
        f"{lab}: value 255 (first at row 5, column 7); expected cityscapesscripts' label ids 0..33; no labelIds "
        "map holds 255, the ignore value of _gtFine_labelTrainIds.png maps: is it a labelTrainIds map saved "
        "under the labelIds name?"]
    assert list(out.parent.iterdir()) == []


def test_ade20k_is_linked_as_is(tmp_path):
    raw = _ade20k(tmp_path / "raw")
    out = tmp_path / "prepared" / "ade20k"
    prepare(_params("ade20k", raw), "ade20k", out)
    ds = _load("ade20k", out, "train")
    assert len(ds) == 3 and len(_load("ade20k", out, "val")) == 2
    seg = ds[0]["gt_seg_map"]
    assert seg[0, 0] == 255 and seg[0, 1] == 149  # reduce_zero_label: 0 -> ignore, 150 -> class 149
    for rel in ("images/training/ADE_train_00000000.jpg", "annotations/validation/ADE_valid_00000001.png"):
        assert (out / rel).stat().st_ino == (raw / "ADEChallengeData2016" / rel).stat().st_ino


def test_pascal_context_mat_labels_become_59_classes(tmp_path):
    raw = _pascal(tmp_path / "raw")
    out = tmp_path / "prepared" / "pascal_context59"
    prepare(_params("pascal_context59", raw), "pascal_context59", out)
    classes = _pascal_classes()
    ds = _load("pascal_context59", out, "train")
    assert len(ds) == 3 and len(_load("pascal_context59", out, "val")) == 2
    assert (out / "ImageSets/SegmentationContext/val.txt").read_text() == "2008_000007\n2010_000001\n"
    assert not (out / "JPEGImages" / "2007_000027.jpg").exists()
    label = scipy.io.loadmat(str(raw / "trainval" / "2008_000002.mat"))["LabelMap"]
    seg = ds[0]["gt_seg_map"]
    # after reduce_zero_label: unlabelled (0) and non-59 classes (odd ids) are ignored;
    # id 2k+2 is mmseg's class k (2 -> aeroplane 0, 4 -> bag 1, 118 -> classes[58] = wood)
    want = {0: 255, 1: 255, 2: 0, 4: 1, 118: 58}
    assert classes[58] == "wood"
    assert np.array_equal(seg, np.vectorize(want.get)(label))


def test_stage_script_converts_and_records(tmp_path):
    """`python stages/prepare.py` as dvc.yaml runs it, from a folder with its own params.yaml."""
    _ade20k(tmp_path / "data" / "raw" / "ade20k")
    tree = yaml.safe_load((REPO / "params.yaml").read_text())
    tree["datasets"] = ["synthetic", "ade20k"]
    tree["data"]["ade20k"] = {"expected_counts": COUNTS}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tree))
    proc = subprocess.run([sys.executable, str(REPO / "stages" / "prepare.py"), "--dataset", "ade20k",
                           "--raw", "data/raw/ade20k", "--out", "data/prepared/ade20k"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    info = yaml.safe_load((tmp_path / "data/prepared/ade20k/dataset.json").read_text())
    assert info["num_train"] == 3 and info["num_val"] == 2 and len(info["classes"]) == 150
    assert "image_hw" not in info  # training uses mmseg's scale for real datasets
    assert sorted(os.listdir(tmp_path / "data" / "prepared")) == ["ade20k"]


# --- failures -----------------------------------------------------------------------

def _bad_cityscapes(raw, out):
    lab = raw / "gtFine/val/lindau/lindau_000000_000019_gtFine_labelIds.png"
    ids = cv2.imread(str(lab), cv2.IMREAD_UNCHANGED)
    ids[3, 4] = 40  # no cityscapes label has id 40
    _png(lab, ids)
    return f"{lab}: label id(s) 40 (first at row 3, column 4); expected ids of cityscapesscripts' label table"


def _bad_ade20k(raw, out):
    lab = raw / "ADEChallengeData2016/annotations/training/ADE_train_00000001.png"
    _png(lab, np.zeros((H, W - 1), np.uint8))
    return f"{out}/annotations/training/ADE_train_00000001.png: label is 12x19 (HxW)"


def _bad_pascal(raw, out):
    mat = raw / "trainval" / "2009_000001.mat"
    scipy.io.savemat(str(mat), {"LabelMap": np.full((H, W), 500, np.uint16)})
    return (f"{mat}: LabelMap value(s) 500 (first at row 0, column 0); "
            f"expected 0 (unlabelled) or a class id of {raw / 'labels.txt'}")


BAD = {"cityscapes": _bad_cityscapes, "ade20k": _bad_ade20k, "pascal_context59": _bad_pascal}


@pytest.mark.parametrize("dataset", list(BAD))
def test_bad_raw_file_is_named_and_nothing_is_left(tmp_path, dataset):
    raw = RAW[dataset](tmp_path / "raw")
    out = tmp_path / "prepared" / dataset
    expected = BAD[dataset](raw, out)
    with pytest.raises(DataError) as err:
        prepare(_params(dataset, raw), dataset, out)
    assert str(err.value).startswith(expected), str(err.value)
    assert len(err.value.problems) == 1, err.value.problems
    assert list(out.parent.iterdir()) == []  # neither the output nor its temporary folder


def test_count_differing_from_the_official_one_fails(tmp_path):
    raw = _cityscapes(tmp_path / "raw")
    tree_params = _params("cityscapes", raw)
    del tree_params.tree["data"]["cityscapes"]["expected_counts"]  # the official 2975/500
    out = tmp_path / "prepared" / "cityscapes"
    with pytest.raises(DataError, match=r"leftImg8bit/train: 3 train image/label pairs; expected 2975 "
                                        r"\(params.yaml: data.cityscapes.expected_counts"):
        prepare(tree_params, "cityscapes", out)
    assert not out.exists()


def test_missing_download_says_what_to_fetch_and_exits_2(tmp_path):
    tree = yaml.safe_load((REPO / "params.yaml").read_text())
    tree["datasets"] = ["synthetic", "pascal_context59"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tree))
    (tmp_path / "data" / "raw" / "pascal_context59").mkdir(parents=True)  # the empty folder DVC watches
    proc = subprocess.run([sys.executable, str(REPO / "stages" / "prepare.py"), "--dataset", "pascal_context59",
                           "--out", "data/prepared/pascal_context59"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "error: prepare@pascal_context59: raw data missing: data/raw/pascal_context59/VOCdevkit/VOC2010/JPEGImages "
        "not found (and 4 more)."), proc.stderr
    for words in ("VOCtrainval_03-May-2010.tar from http://host.robots.ox.ac.uk/pascal/VOC/voc2010/",
                  "trainval.tar.gz from https://cs.stanford.edu/~roozbeh/pascal-context/ -> "
                  "data/raw/pascal_context59/trainval (labels, <name>.mat)",
                  "data/raw/pascal_context59/labels.txt", "dvc repro prepare@pascal_context59"):
        assert words in lines[0], words
    assert not (tmp_path / "data" / "prepared").exists()


def test_partial_download_names_the_missing_part(tmp_path):
    raw = _cityscapes(tmp_path / "raw")
    shutil.rmtree(raw / "gtFine" / "val")
    with pytest.raises(RawDataMissing, match=rf"^prepare@cityscapes: raw data missing: {raw}/gtFine/val not found\. "):
        prepare(_params("cityscapes", raw), "cityscapes", tmp_path / "prepared" / "cityscapes")
    assert not (tmp_path / "prepared").exists()


def test_raw_dir_param_and_stage_flag_must_agree(tmp_path):
    from bpkd.params import ParamsError

    with pytest.raises(ParamsError, match=r"data.ade20k.raw_dir = .* but the stage was given --raw 'elsewhere'"):
        prepare(_params("ade20k", tmp_path / "raw"), "ade20k", tmp_path / "out", raw="elsewhere")
