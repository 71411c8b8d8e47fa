"""Data validation (issue 6): a bad file in a prepared dataset fails `prepare` with an
error naming the file and what was expected, and leaves no output behind."""
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from bpkd import cli
from bpkd.datasets import prepare as prepare_mod
from bpkd.datasets import specs
from bpkd.datasets.synthetic import generate
from bpkd.datasets.validate import DataError, validate_layout
from conftest import REPO

SYNTH = specs.get("synthetic")


def _dataset(root: Path) -> Path:
    generate(root, 3, 2, 32, 48, seed=0)
    return root


def _label(root, name="train_00001.png", split="train"):
    return root / "ann_dir" / split / name


# Each case damages a valid synthetic dataset; the error must name this file (relative
# to the dataset root) and contain these words.
def _out_of_range(root):
    lab = cv2.imread(str(_label(root)), cv2.IMREAD_UNCHANGED)
    lab[5, 7] = 10  # num_classes is 10: valid indices are 0..9
    lab[6, 7] = 200
    cv2.imwrite(str(_label(root)), lab)
    return "ann_dir/train/train_00001.png", ["label values 10, 200", "2 pixels", "row 5, column 7",
                                             "class indices 0..9", "ignore index 255"]


def _size_mismatch(root):
    lab = cv2.imread(str(_label(root, "val_00000.png", "val")), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(_label(root, "val_00000.png", "val")), lab[:, :40])
    return "ann_dir/val/val_00000.png", ["label is 32x40", "img_dir/val/val_00000.png is 32x48",
                                         "expected the same size"]


def _missing_label(root):
    _label(root, "train_00002.png").unlink()
    return "img_dir/train/train_00002.png", ["image without label", "expected", "ann_dir/train/train_00002.png"]


def _missing_image(root):
    (root / "img_dir" / "val" / "val_00001.png").unlink()
    return "ann_dir/val/val_00001.png", ["label without image", "img_dir/val/val_00001.png"]


def _corrupt_label(root):
    path = _label(root, "train_00000.png")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated PNG
    return "ann_dir/train/train_00000.png", ["cannot be read", "truncated"]


def _corrupt_image(root):
    (root / "img_dir" / "train" / "train_00001.png").write_bytes(b"not a png at all")
    return "img_dir/train/train_00001.png", ["cannot be read", "expected a readable .png image"]


def _colour_label(root):
    lab = cv2.imread(str(_label(root)), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(_label(root)), np.dstack([lab, lab, lab]))
    return "ann_dir/train/train_00001.png", ["3 channels", "single-channel"]


def _missing_split(root):
    import shutil

    shutil.rmtree(root / "ann_dir" / "val")
    return "ann_dir/val", ["folder missing", "val split's labels"]


CASES = {"out-of-range label": _out_of_range, "size mismatch": _size_mismatch, "missing label": _missing_label,
         "missing image": _missing_image, "corrupt label": _corrupt_label, "corrupt image": _corrupt_image,
         "colour label": _colour_label, "missing split folder": _missing_split}


def test_synthetic_dataset_passes(tmp_path):
    assert validate_layout(_dataset(tmp_path / "d"), SYNTH) == {"train": 3, "val": 2}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_dataset_names_file_and_expectation(tmp_path, case):
    root = _dataset(tmp_path / "d")
    rel, words = CASES[case](root)
    with pytest.raises(DataError) as err:
        validate_layout(root, SYNTH, shown_as="data/prepared/synthetic")
    message = str(err.value)
    assert len(err.value.problems) == 1, err.value.problems
    assert message.startswith(f"data/prepared/synthetic/{rel}: "), message
    for w in words:
        assert w in message, (w, message)
    assert "\n" not in message  # cli prints it as one `error:` line


def test_ignore_index_is_allowed(tmp_path):
    root = _dataset(tmp_path / "d")
    lab = cv2.imread(str(_label(root)), cv2.IMREAD_UNCHANGED)
    lab[:4] = SYNTH.ignore_index
    cv2.imwrite(str(_label(root)), lab)
    assert validate_layout(root, SYNTH) == {"train": 3, "val": 2}
    # The control: any other value outside 0..9 in the same rows is refused.
    lab[:4] = SYNTH.ignore_index - 1
    cv2.imwrite(str(_label(root)), lab)
    with pytest.raises(DataError, match=f"label values? {SYNTH.ignore_index - 1}"):
        validate_layout(root, SYNTH)


def test_reduce_zero_label_range(tmp_path):
    """ADE20K's files hold 0 (unlabelled) and 1..150: 150 is valid there, 151 is not."""
    ade = specs.get("ade20k")
    for split, prefix in (("train", ade.train_prefix), ("val", ade.val_prefix)):
        (tmp_path / prefix["img_path"]).mkdir(parents=True)
        (tmp_path / prefix["seg_map_path"]).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / prefix["img_path"] / f"{split}.jpg"), np.zeros((8, 8, 3), np.uint8))
        lab = np.zeros((8, 8), np.uint8)
        lab[0, 0], lab[0, 1] = 150, 255
        cv2.imwrite(str(tmp_path / prefix["seg_map_path"] / f"{split}.png"), lab)
    validate_layout(tmp_path, ade)
    lab[2, 3] = 151
    cv2.imwrite(str(tmp_path / ade.val_prefix["seg_map_path"] / "val.png"), lab)
    with pytest.raises(DataError, match=r"annotations/validation/val.png: label value 151 .*row 2, column 3.*"
                                        r"class values 1\.\.150"):
        validate_layout(tmp_path, ade)


def test_palette_label_is_read_as_indices(tmp_path):
    """A palette PNG (Pascal VOC style) holds class indices: mmseg reads them with
    Pillow, and so must the validator (cv2 would expand it to colours)."""
    from PIL import Image

    root = _dataset(tmp_path / "d")
    lab = cv2.imread(str(_label(root)), cv2.IMREAD_UNCHANGED)
    im = Image.fromarray(lab, mode="L").convert("P")
    im.putpalette([(i * 37) % 256 for i in range(768)])
    im.save(_label(root))
    # Read as colours, the file would be refused as 3-channel; read as indices it passes.
    assert validate_layout(root, SYNTH) == {"train": 3, "val": 2}
    # The palette's index, not its colour, is what is range-checked: index 10 is out of 0..9.
    lab[2, 3] = 10
    im = Image.fromarray(lab, mode="L").convert("P")
    im.putpalette([(i * 37) % 256 for i in range(768)])
    im.save(_label(root))
    with pytest.raises(DataError, match=r"train_00001.png: label value 10 .*row 2, column 3"):
        validate_layout(root, SYNTH)


def test_all_problems_are_collected_in_one_line(tmp_path):
    root = _dataset(tmp_path / "d")
    _missing_label(root)
    _out_of_range(root)
    _corrupt_image(root)
    with pytest.raises(DataError) as err:
        validate_layout(root, SYNTH)
    assert len(err.value.problems) == 3
    assert "(and 2 more problems: " in str(err.value) and "\n" not in str(err.value)


def test_spec_suffixes_are_what_mmseg_loads():
    """The validator pairs files by the suffixes mmseg's dataset classes load."""
    import inspect

    from mmseg.registry import DATASETS

    from bpkd.datasets import mmseg_dataset  # noqa: F401  (registers the synthetic dataset)

    for spec in specs.DATASETS.values():
        params = inspect.signature(DATASETS.get(spec.mmseg_type).__init__).parameters
        assert (spec.img_suffix, spec.seg_map_suffix) == (params["img_suffix"].default,
                                                          params["seg_map_suffix"].default), spec.name


class _Params:
    """What ``prepare`` reads of the params for the synthetic dataset."""

    def synthetic(self):
        from bpkd.params import SyntheticSettings

        return SyntheticSettings(num_train=3, num_val=2, height=32, width=48, seed=0)


def test_prepare_validates_and_leaves_no_output(tmp_path, monkeypatch):
    out = tmp_path / "data" / "prepared" / "synthetic"

    def bad_generate(root, *args):
        generate(root, *args)
        _out_of_range(Path(root))

    monkeypatch.setattr(prepare_mod, "generate", bad_generate)
    with pytest.raises(DataError, match=rf"^{out}/ann_dir/train/train_00001.png: label values 10, 200"):
        prepare_mod.prepare(_Params(), "synthetic", out)
    assert not out.exists()
    assert list(out.parent.iterdir()) == []  # the temporary folder is gone too


def test_prepare_keeps_previous_output_on_bad_data(tmp_path, monkeypatch):
    out = tmp_path / "synthetic"
    prepare_mod.prepare(_Params(), "synthetic", out)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    assert (out / "dataset.json").is_file() and len(before) > 5

    monkeypatch.setattr(prepare_mod, "generate", lambda root, *a: (generate(root, *a), _missing_image(Path(root))))
    with pytest.raises(DataError, match="label without image"):
        prepare_mod.prepare(_Params(), "synthetic", out)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir()] == ["synthetic"]


def test_cli_prints_one_error_line_and_exits_2(tmp_path, capsys):
    root = _dataset(tmp_path / "d")
    _size_mismatch(root)
    with pytest.raises(SystemExit) as exit_:
        cli.run(lambda: validate_layout(root, SYNTH))
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {root}/ann_dir/val/val_00000.png: label is 32x40"), err


def test_validate_command_on_a_directory(tmp_path):
    root = _dataset(tmp_path / "d")
    ok = subprocess.run([sys.executable, "-m", "bpkd.datasets.validate", "--dataset", "synthetic", str(root)],
                        capture_output=True, text=True, cwd=REPO)
    assert ok.returncode == 0 and ok.stdout.strip() == f"{root}: 3 train pairs, 2 val pairs: OK", ok
    _missing_label(root)
    bad = subprocess.run([sys.executable, "-m", "bpkd.datasets.validate", "--dataset", "synthetic", str(root)],
                         capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2
    assert bad.stderr.strip() == (f"error: {root}/img_dir/train/train_00002.png: image without label; "
                                  f"expected {root}/ann_dir/train/train_00002.png"), bad.stderr
