"""Synthetic data, atomic outputs, safe checkpoint loading."""
import hashlib
import os
import pickle

import numpy as np
import pytest
import torch

from bpkd.atomic import atomic_path, write_json
from bpkd.datasets.synthetic import CLASSES, generate, render_scene
from bpkd.weights import CheckpointError, load_checkpoint, save_checkpoint


def _digest(folder):
    h = hashlib.sha256()
    for root, _, files in sorted(os.walk(folder)):
        for f in sorted(files):
            h.update(f.encode() + open(os.path.join(root, f), "rb").read())
    return h.hexdigest()


def test_synthetic_is_deterministic_and_has_thin_structures(tmp_path):
    generate(tmp_path / "a", 3, 2, 64, 128, seed=0)
    generate(tmp_path / "b", 3, 2, 64, 128, seed=0)
    generate(tmp_path / "c", 3, 2, 64, 128, seed=1)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")
    labels = np.stack([render_scene(np.random.default_rng([0, 0, i]), 128, 256)[1] for i in range(8)])
    present = set(np.unique(labels))
    # Ten of Cityscapes' classes, in its order; eight scenes draw every one of them.
    assert CLASSES == ("road", "sidewalk", "building", "fence", "pole", "traffic sign", "vegetation", "sky",
                       "person", "car")
    assert present == set(range(10))
    pole = labels == CLASSES.index("pole")
    # poles are 1-2 px wide: most pole pixels touch a non-pole pixel horizontally
    touching = pole & ~(np.roll(pole, 1, axis=2) & np.roll(pole, -1, axis=2))
    assert touching.sum() > 0.8 * pole.sum()


def test_atomic_path_leaves_previous_output_on_failure(tmp_path):
    target = tmp_path / "m.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text().strip().startswith("{") and '"a": 1' in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_checkpoint_that_needs_unpickling_is_refused(tmp_path):
    bad = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "payload": _Evil()}, bad)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(bad)
    good = tmp_path / "good.pth"
    save_checkpoint({"w": torch.ones(2)}, good, meta={"arch": "x"})
    assert torch.equal(load_checkpoint(good)["state_dict"]["w"], torch.ones(2))

