"""Bad params fail at stage start with a message naming the key."""
import copy
from pathlib import Path

import pytest
import yaml

from bpkd import params
from bpkd.distill.method_config import resolve

REPO = Path(__file__).resolve().parents[1]
TREE = yaml.safe_load((REPO / "params.yaml").read_text())

# (key, bad value, the offending value the message must show)
BAD = [
    ("profile", "huge", "'huge'"),
    ("datasets", ["synthetic", "kitti"], "'kitti'"),
    ("pairs", ["unet_r50_r18"], "'unet_r50_r18'"),
    ("methods", ["kd"], "'kd'"),
    ("models", ["baseline", "student"], "'student'"),
    ("models", ["teacher", "baseline"], "['teacher', 'baseline']"),  # the teacher is always evaluated
    ("seeds", [], "[]"),
    ("seeds", [0, 0], "[0, 0]"),
    ("seeds", [0, -1], "[0, -1]"),
    ("seeds", "0,1", "'0,1'"),
    ("profiles.demo.train.lr", -0.1, "-0.1"),
    ("profiles.demo.train.lr", "fast", "'fast'"),
    ("profiles.demo.train.batch_size", 3, "3"),  # nproc 2 below: 3 does not split over 2 processes
    ("profiles.demo.student.iters", 0, "0"),
    ("profiles.demo.train.crop", [64], "[64]"),
    ("profiles.demo.train.pretrained_backbone", "yes", "'yes'"),
    ("released", ["teacher"], "['teacher']"),  # the teacher is an input, evaluated by evaluate_teacher@
    ("released", ["baseline"], "['baseline']"),  # also in `models`: both would write its metrics
    ("released", ["student"], "'student'"),
]


def _set(tree, dotted, value):
    node = tree
    *parents, last = dotted.split(".")
    for p in parents:
        node = node[p]
    node[last] = value


@pytest.mark.parametrize("key,value,shown", BAD)
def test_bad_value_names_the_key(key, value, shown):
    tree = copy.deepcopy(TREE)
    if key.endswith("batch_size"):
        tree["profiles"]["demo"]["train"]["nproc"] = 2
    _set(tree, key, value)
    with pytest.raises(params.ParamsError) as err:
        params.Params(tree)
    assert f"{key} = {shown} is invalid" in str(err.value)


@pytest.mark.parametrize("group,key,value", [
    ("loss", "edge_weight", -1.0), ("loss", "edge_width", 0), ("loss", "edge_tau", 0.0), ("loss", "edge_norm", "mean"), ("loss", "edge_wieght", 1.0),
    ("cwd", "tau", -4.0), ("cirkd", "pixel_queue_size", 0), ("skds.benchmark", "pair_patch", 1.5),
    ("skds.official", "adv_loss", "wgan"), ("ifvd", "preset", "offical"),
])
def test_bad_method_knob_fails_before_training(tmp_path, group, key, value):
    tree = copy.deepcopy(TREE)
    _set(tree, f"{group}.{key}", value)
    method = {"loss": "bpkd"}.get(group.split(".")[0], group.split(".")[0])
    with pytest.raises(params.ParamsError) as err:
        resolve(params.Params(tree), method, tmp_path / "m.json")
    assert f"{group}.{key}" in str(err.value)
    assert not (tmp_path / "m.json").exists()


def test_default_params_are_valid():
    p = params.Params(copy.deepcopy(TREE))
    assert p.profile == "demo" and p.train["student"].batch_per_process == p.train["student"].batch_size
