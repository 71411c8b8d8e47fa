"""CamVid (issue #42, part 1): prepare@camvid converts SegNet's layout into mmseg's, a bad
raw file fails naming it with nothing written, the fetch command downloads and verifies
every file from a loopback server and resumes; and, where the real copy is at
../shared/datasets/camvid, the shipped manifest matches it and the real split prepares."""
import hashlib
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from bpkd.datasets import camvid, camvid_fetch, specs
from bpkd.datasets.prepare import prepare
from bpkd.datasets.validate import DataError
from bpkd.params import Params
from conftest import REPO, tool_env
from test_weights import _Server

SHARED = REPO.parent / "shared" / "datasets" / "camvid"
needs_real = pytest.mark.skipif(not SHARED.is_dir(), reason=f"the real CamVid copy is not at {SHARED}")
H, W = 9, 12
COUNTS = {"train": 2, "val": 1, "test": 2}


def _segnet(raw: Path, counts=COUNTS) -> Path:
    """A tiny CamVid in SegNet's layout: frames, labels 0..11 (11 void), the three lists."""
    rng = np.random.default_rng(0)
    for split, n in counts.items():
        lines = []
        for i in range(n):
            name = f"0001TP_{split}{i:02d}.png"
            for folder, array in ((split, rng.integers(0, 255, (H, W, 3), np.uint8)),
                                  (f"{split}annot", rng.integers(0, 12, (H, W), np.uint8))):
                (raw / folder).mkdir(parents=True, exist_ok=True)
                Image.fromarray(array).save(raw / folder / name)
            lines.append(f"/SegNet/CamVid/{split}/{name} /SegNet/CamVid/{split}annot/{name}")
        (raw / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return raw


def _params(raw: Path, counts=COUNTS) -> Params:
    tree = yaml.safe_load((REPO / "params.yaml").read_text())
    tree["datasets"] = ["synthetic", "camvid"]
    tree["data"]["camvid"] = {"raw_dir": str(raw), "expected_counts": dict(counts)}
    return Params(tree)


def test_prepare_writes_mmseg_layout_with_void_as_ignore_and_linked_frames(tmp_path):
    raw = _segnet(tmp_path / "raw")
    out = tmp_path / "prepared"
    prepare(_params(raw), "camvid", out)
    for split, n in COUNTS.items():
        frames = sorted((out / "img_dir" / split).iterdir())
        assert len(frames) == n == len(list((out / "ann_dir" / split).iterdir()))
        for frame in frames:
            assert frame.stat().st_ino == (raw / split / frame.name).stat().st_ino  # a hard link, not a copy
            source = np.asarray(Image.open(raw / f"{split}annot" / frame.name))
            prepared = np.asarray(Image.open(out / "ann_dir" / split / frame.name))
            assert (prepared == np.where(source == 11, 255, source)).all() and (source == 11).any()
    info = yaml.safe_load((out / "dataset.json").read_text())
    assert (info["num_train"], info["num_val"], info["num_test"]) == (2, 1, 2)
    assert info["classes"] == list(camvid.CLASSES) and len(info["classes"]) == specs.get("camvid").num_classes

    # mmseg's own loading path reads it: the registered class, its palette, the test split.
    import mmseg.datasets  # noqa: F401
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

    from bpkd.datasets import mmseg_dataset  # noqa: F401

    init_default_scope("mmseg")
    data = DATASETS.build(dict(type="CamVidDataset", data_root=str(out), data_prefix=specs.get("camvid").prefix("test"),
                               pipeline=[dict(type="LoadImageFromFile"), dict(type="LoadAnnotations")]))
    assert len(data) == 2 and data.metainfo["classes"] == camvid.CLASSES
    assert set(np.unique(data[0]["gt_seg_map"])) <= set(range(11)) | {255}


def _drop_label(raw):
    (raw / "valannot" / "0001TP_val00.png").unlink()


def _stray_frame(raw):
    shutil.copy(raw / "test" / "0001TP_test00.png", raw / "test" / "stray.png")


def _truncated_frame(raw):
    path = raw / "train" / "0001TP_train01.png"
    path.write_bytes(path.read_bytes()[:60])


def _value_12(raw):
    path = raw / "trainannot" / "0001TP_train00.png"
    ids = np.asarray(Image.open(path)).copy()
    ids[3, 4] = 12
    Image.fromarray(ids).save(path)


def _other_size(raw):
    Image.fromarray(np.zeros((H + 1, W), np.uint8)).save(raw / "testannot" / "0001TP_test01.png")


@pytest.mark.parametrize("damage, named, expected", [
    (_drop_label, "valannot/0001TP_val00.png", "missing; listed in"),
    (_stray_frame, "test/stray.png", "not in"),
    (_truncated_frame, "train/0001TP_train01.png", "cannot be read as an image"),
    (_value_12, "trainannot/0001TP_train00.png", "label value(s) 12 (first at row 3, column 4); expected 0..10"),
    (_other_size, "testannot/0001TP_test01.png", "label is 10x12 (HxW) but its image"),
], ids=["missing", "extra", "truncated", "value", "size"])
def test_bad_raw_file_fails_naming_it_and_writes_nothing(tmp_path, damage, named, expected):
    raw = _segnet(tmp_path / "raw")
    damage(raw)
    with pytest.raises(DataError) as err:
        prepare(_params(raw), "camvid", tmp_path / "prepared")
    assert f"{raw / named}:" in str(err.value) and expected in str(err.value), str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]  # no output, no temporary folder


def test_counts_other_than_expected_fail_naming_the_split(tmp_path):
    raw = _segnet(tmp_path / "raw")
    with pytest.raises(DataError, match=r"prepared/img_dir/test: 2 test image/label pairs; expected 3"):
        prepare(_params(raw, {**COUNTS, "test": 3}), "camvid", tmp_path / "prepared")
    assert not (tmp_path / "prepared").exists()
    with pytest.raises(Exception, match=r"data.camvid.expected_counts .* expected \{train: N, val: N, test: N\}"):
        prepare(_params(raw, {"train": 2, "val": 1}), "camvid", tmp_path / "prepared")


def _served(tmp_path) -> tuple[_Server, Path, dict[str, bytes]]:
    raw = _segnet(tmp_path / "upstream")
    files = {p.relative_to(raw).as_posix(): p.read_bytes() for p in sorted(raw.rglob("*")) if p.is_file()}
    manifest = tmp_path / "camvid.sha256"
    manifest.write_text("".join(f"{hashlib.sha256(b).hexdigest()}  {name}\n" for name, b in files.items()))
    srv = _Server()
    srv.files = {f"/CamVid/{name}": data for name, data in files.items()}
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, manifest, files


def test_fetch_downloads_verifies_and_resumes_from_a_loopback_server(tmp_path):
    srv, manifest, files = _served(tmp_path)
    try:
        base, out = srv.url("/CamVid/"), tmp_path / "raw"
        cut = "/CamVid/train/0001TP_train00.png"
        srv.cut_once[cut] = 100  # the connection drops after 100 bytes: resumed from there
        assert camvid_fetch.fetch(out, base, manifest, jobs=2) == len(files)
        assert {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()} == files
        assert (cut, "bytes=100-") in srv.requests
        # A rerun verifies what is there and asks the server for nothing.
        asked = len(srv.requests)
        camvid_fetch.fetch(out, base, manifest)
        assert len(srv.requests) == asked
        # A file the server serves wrong is refused, named, and not left in place.
        (out / "val.txt").unlink()
        srv.files["/CamVid/val.txt"] = b"tampered\n"
        with pytest.raises(Exception, match=r"val.txt: SHA-256 mismatch"):
            camvid_fetch.fetch(out, base, manifest)
        assert not (out / "val.txt").exists() and not (out / "val.txt.part").exists()
    finally:
        srv.shutdown()
        srv.server_close()


def test_fetch_command_line_then_prepare(tmp_path):
    srv, manifest, files = _served(tmp_path)
    try:
        out = tmp_path / "raw"
        proc = subprocess.run([sys.executable, "-m",
                               "bpkd.datasets.camvid_fetch", "--out", str(out), "--base-url", srv.url("/CamVid/"),
                               "--manifest", str(manifest)], cwd=REPO, env=tool_env(), capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert f"{len(files)} files of CamVid verified" in proc.stdout
    finally:
        srv.shutdown()
        srv.server_close()
    prepare(_params(out), "camvid", tmp_path / "prepared")


def test_the_shipped_manifest_pins_the_repository_commit():
    entries = camvid_fetch.manifest()
    assert len(entries) == 367 * 2 + 101 * 2 + 233 * 2 + 3
    assert camvid_fetch.COMMIT in camvid_fetch.BASE_URL and len(camvid_fetch.COMMIT) == 40


@needs_real
def test_the_shipped_manifest_matches_the_real_copy():
    entries = camvid_fetch.manifest()
    on_disk = {p.relative_to(SHARED).as_posix() for p in SHARED.rglob("*") if p.is_file()} - {"SOURCE.md"}
    assert on_disk == set(entries)
    wrong = [name for name, digest in entries.items()
             if hashlib.sha256((SHARED / name).read_bytes()).hexdigest() != digest]
    assert wrong == []


@needs_real
def test_the_real_copy_prepares_with_the_official_counts(tmp_path):
    tree = yaml.safe_load((REPO / "params.yaml").read_text())
    tree["datasets"] = ["camvid"]
    tree["data"]["camvid"] = {"raw_dir": str(SHARED)}  # the official 367 / 101 / 233
    out = tmp_path / "camvid"
    prepare(Params(tree), "camvid", out)
    info = yaml.safe_load((out / "dataset.json").read_text())
    assert (info["num_train"], info["num_val"], info["num_test"]) == (367, 101, 233)


def test_dvc_lists_prepare_camvid_when_camvid_is_a_dataset(tmp_path):
    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    tree = yaml.safe_load((REPO / "params.yaml").read_text())
    tree["datasets"] = ["synthetic", "camvid"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    env = tool_env()
    subprocess.run(["dvc", "init", "--no-scm", "-q"], cwd=tmp_path, env=env, check=True)
    listed = subprocess.run(["dvc", "stage", "list", "--name-only"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, check=True).stdout.split()
    assert "prepare@camvid" in listed and "prepare@synthetic" in listed
    assert "prepare@camvid" not in subprocess.run(["dvc", "stage", "list", "--name-only"], cwd=REPO, env=env,
                                                  capture_output=True, text=True, check=True).stdout.split()


def test_evaluate_scores_the_test_split_and_training_validates_on_val():
    from bpkd.training.config import val_parts

    spec = specs.get("camvid")
    assert spec.eval_split == "test" and specs.get("synthetic").eval_split == "val"
    scored = val_parts(spec, "data/prepared/camvid", spec.scale, split=spec.eval_split)
    validated = val_parts(spec, "data/prepared/camvid", spec.scale)
    assert scored["dataloader"]["dataset"]["data_prefix"] == {"img_path": "img_dir/test", "seg_map_path": "ann_dir/test"}
    assert validated["dataloader"]["dataset"]["data_prefix"] == {"img_path": "img_dir/val", "seg_map_path": "ann_dir/val"}


def test_frames_prepared_smaller_are_read_at_that_size_by_every_stage(tmp_path):
    """data.camvid.height/width: frames area-averaged, labels nearest, the size recorded
    in dataset.json, where training, evaluation and the band radius read it."""
    from bpkd.distill.band_radius import band_radius
    from bpkd.training.config import data_scale
    from bpkd.training.run import _image_hw

    raw = _segnet(tmp_path / "raw")
    params = _params(raw)
    params.tree["data"]["camvid"].update(height=6, width=8)
    with pytest.raises(Exception, match=r"data.camvid.height = 6 is invalid; expected an integer >= 16"):
        prepare(params, "camvid", tmp_path / "prepared")
    params.tree["data"]["camvid"].update(height=18, width=24)
    out = tmp_path / "prepared"
    prepare(params, "camvid", out)
    frame = out / "img_dir" / "train" / "0001TP_train00.png"
    assert Image.open(frame).size == (24, 18) and frame.stat().st_ino != (raw / "train" / frame.name).stat().st_ino
    source = np.asarray(Image.open(raw / "trainannot" / frame.name))
    label = np.asarray(Image.open(out / "ann_dir" / "train" / frame.name))
    assert label.shape == (18, 24) and set(np.unique(label)) <= set(np.unique(np.where(source == 11, 255, source)))
    assert _image_hw(params, "camvid", str(out), dry_run=False) == (18, 24)
    assert data_scale(specs.get("camvid"), (18, 24)) == (24, 18)
    assert band_radius(3, (180, 240)) == 1  # the paper's 3 px at the scale of 180-high frames
    del params.tree["data"]["camvid"]["width"]
    with pytest.raises(Exception, match=r"data.camvid.width is missing; expected both height and width"):
        prepare(params, "camvid", tmp_path / "again")
    params.tree["data"]["cityscapes"] = {"height": 512, "width": 1024}
    from bpkd.datasets.prepare import image_hw
    with pytest.raises(Exception, match=r"data.cityscapes.height = 512 is not supported for cityscapes"):
        image_hw(params, "cityscapes")


def test_the_evaluate_stage_scores_camvids_test_split_and_says_so(tmp_path):
    """stages/evaluate.py on a prepared CamVid: the 2 test frames scored, the split recorded."""
    import json
    import sys

    import torch

    from bpkd.models.build import build_model, model_config

    tree = yaml.safe_load((REPO / "params.yaml").read_text())
    tree.update(profile="smoke", datasets=["camvid"])
    tree["data"]["camvid"] = {"raw_dir": str(_segnet(tmp_path / "raw")), "expected_counts": COUNTS}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    prepare(Params(tree), "camvid", tmp_path / "data" / "prepared" / "camvid")
    model = build_model(model_config("hrnet_w18s", 11, (64, 128)))
    torch.save({"state_dict": model.state_dict()}, tmp_path / "student.pth")
    proc = subprocess.run([sys.executable, str(REPO / "stages" / "evaluate.py"), "--dataset", "camvid", "--pair",
                           "hrnet_w48_w18s", "--model", "baseline", "--checkpoint", "student.pth", "--out", "eval.json",
                           "--per-class", "per_class.json"], cwd=tmp_path, env=tool_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    scores = json.loads((tmp_path / "eval.json").read_text())
    assert scores["split"] == "test" and 0 <= scores["mIoU"] <= 100 and "split test" in proc.stdout
    assert [row["class"] for row in json.loads((tmp_path / "per_class.json").read_text())] == list(camvid.CLASSES)


def test_the_camvid_profile_trains_its_teacher_here_on_its_recipe(tmp_path):
    """profile: camvid with datasets: [camvid] resolves (dry run) to the recipe: 96x128 crops of
    frames read at 180x240, the teacher's 1600 iterations, trained here, not downloaded."""
    import sys

    tree = yaml.safe_load((REPO / "params.yaml").read_text())
    tree.update(profile="camvid", datasets=["camvid"])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    proc = subprocess.run([sys.executable, str(REPO / "stages" / "train.py"), "--dry-run", "--role", "teacher",
                           "--dataset", "camvid", "--pair", "hrnet_w48_w18s"], cwd=tmp_path, env=tool_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out, flat = proc.stdout, "".join(proc.stdout.split())
    assert "downloads" not in out and "# iterations: 1600 (val every 800)" in out, out[:2000]
    assert "# crop (h, w): (96, 128)" in out and "# test: {'mode': 'slide', 'crop_size': (96, 128)" in out, out[:2000]
    assert "scale=(240,180," in flat and "data_prefix=dict(img_path='img_dir/val'" in flat  # validates on val


def test_bpkd_gradients_reads_a_prepared_real_datasets_train_frames_through_its_pipeline(tmp_path):
    """bench.bpkd_gradients --dataset camvid: batches of the prepared train split, loaded and
    cropped by CamVid's own mmseg pipeline at the profile's crop, drawn reproducibly."""
    from bpkd.bench.loss_scale import prepared_batches

    raw = _segnet(tmp_path / "raw", counts={"train": 4, "val": 1, "test": 1})
    params = _params(raw, counts={"train": 4, "val": 1, "test": 1})
    params.tree["data"]["camvid"].update(height=24, width=32)
    prepare(params, "camvid", tmp_path / "prepared" / "camvid")
    tree = dict(params.tree, profile="camvid")
    tree["profiles"]["camvid"]["train"]["crop"] = [16, 16]
    batches = prepared_batches(Params(tree), "camvid", 2, 2, seed=0, root=str(tmp_path / "prepared"))
    assert len(batches) == 2 and all(len(b["inputs"]) == 2 for b in batches)
    names = [s.img_path.rsplit("/", 1)[1] for b in batches for s in b["data_samples"]]
    assert sorted(names) == [f"0001TP_train{i:02d}.png" for i in range(4)]  # four different frames
    for b in batches:
        for image, sample in zip(b["inputs"], b["data_samples"]):
            label = sample.gt_sem_seg.data
            assert image.shape[1:] == label.shape[1:] == (16, 16)
            assert set(label.unique().tolist()) <= set(range(11)) | {255}
    again = prepared_batches(Params(tree), "camvid", 2, 2, seed=0, root=str(tmp_path / "prepared"))
    assert all((a["inputs"][0] == b["inputs"][0]).all() for a, b in zip(batches, again))
    with pytest.raises(FileNotFoundError, match="dataset.json: not found; expected prepare@camvid's output"):
        prepared_batches(Params(tree), "camvid", 1, 1, seed=0, root=str(tmp_path / "elsewhere"))


def test_the_cam_class_names_camvids_car_whatever_its_case():
    """boundary.cam_class is one name for every dataset: 'car' is CamVid's 'Car'."""
    from bpkd.boundary.views import class_named
    from bpkd.params import ParamsError

    classes = list(camvid.CLASSES)
    assert class_named("car", classes, "camvid") == "Car"
    with pytest.raises(ParamsError, match=r"boundary.cam_class = 'truck' is not a class of camvid"):
        class_named("truck", classes, "camvid")
