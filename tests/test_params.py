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
    ("models", ["skds", "student"], "'student'"),
    ("models", ["baseline", "skds"], "['baseline', 'skds']"),  # the baseline trains over baseline_seeds
    ("models", ["teacher", "baseline"], "['teacher', 'baseline']"),  # the teacher is always evaluated
    ("seeds", [], "[]"),
    ("seeds", [0, 0], "[0, 0]"),
    ("seeds", [0, -1], "[0, -1]"),
    ("seeds", "0,1", "'0,1'"),
    ("baseline_seeds", [], "[]"),  # empty only when the baseline is released
    ("baseline_seeds", [1, 1], "[1, 1]"),
    ("baseline_seeds", [0, True], "[0, True]"),
    ("profiles.demo.train.lr", -0.1, "-0.1"),
    ("profiles.demo.train.lr", "fast", "'fast'"),
    ("profiles.demo.train.batch_size", 3, "3"),  # nproc 2 below: 3 does not split over 2 processes
    ("profiles.demo.student.iters", 0, "0"),
    ("profiles.demo.train.crop", [64], "[64]"),
    ("profiles.demo.train.pretrained_backbone", "yes", "'yes'"),
    ("released", ["teacher"], "['teacher']"),  # the teacher is an input, evaluated by evaluate_teacher@
    ("released", ["skds"], "['skds']"),  # also in `models`: both would write its metrics
    ("released", ["baseline"], "['baseline']"),  # also trained here over baseline_seeds
    ("released", ["student"], "'student'"),
    ("released", ["bpkd"], "['bpkd']"),  # registry.yaml lists no released checkpoint for synthetic
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


def test_methods_seeds_must_be_baseline_seeds():
    """Each method is compared with the baseline of the same seed: the message names both keys."""
    tree = copy.deepcopy(TREE)
    tree.update(seeds=[0, 3], baseline_seeds=[0, 1, 2])
    with pytest.raises(params.ParamsError) as err:
        params.Params(tree)
    assert str(err.value) == ("params.yaml: seeds = [0, 3] has seeds missing from baseline_seeds = [0, 1, 2]: "
                              "add 3 to baseline_seeds (each method is compared with the baseline trained on "
                              "the same seed)")
    tree.update(seeds=[2], baseline_seeds=[2, 5])
    p = params.Params(tree)
    assert (p.seeds_of("bpkd"), p.seeds_of("baseline"), p.students[0]) == ([2], [2, 5], "baseline")


def test_a_released_baseline_is_not_trained():
    tree = copy.deepcopy(TREE)
    tree.update(datasets=["cityscapes"], released=["baseline"], baseline_seeds=[])
    p = params.Params(tree)
    assert "baseline" not in p.students and p.check("released", "baseline") == "baseline"
    with pytest.raises(params.ParamsError, match="--model 'baseline' is not in params.yaml's list `models`"):
        p.check("model", "baseline")


def test_every_model_released_and_no_method_trained():
    """The paper's tables without training: `methods: []`, every model of the registry
    released (methods included, though `methods` lists none of them), no student trained."""
    tree = copy.deepcopy(TREE)
    tree.update(datasets=["cityscapes", "ade20k"], pairs=["pspnet_r101_r18", "hrnet_w48_w18s"], methods=[],
                models=[], released=["baseline", "skds", "ifvd", "cirkd", "cwd", "bpkd"], baseline_seeds=[])
    p = params.Params(tree)
    assert (p.methods, p.models, p.students) == ([], [], [])
    assert p.check("released", "cirkd") == "cirkd"
    with pytest.raises(params.ParamsError, match="--model 'cirkd' is not in params.yaml's list `models`"):
        p.check("model", "cirkd")


def test_a_dataset_and_pair_with_nothing_released_fails_naming_it():
    """The shipped registry lists no checkpoint for `synthetic`: released models there
    would only give rows of `—` after the teacher trained."""
    tree = copy.deepcopy(TREE)
    tree.update(datasets=["cityscapes", "synthetic"], methods=[], models=[], released=["baseline", "cirkd"],
                baseline_seeds=[])
    with pytest.raises(params.ParamsError) as err:
        params.Params(tree)
    assert str(err.value).startswith(
        "params.yaml: released = ['baseline', 'cirkd'] is invalid; expected models with a released checkpoint for "
        "each dataset and pair of the run; ")
    assert "lists none of them for synthetic/hrnet_w48_w18s: remove that dataset or pair" in str(err.value)
    # Cityscapes' HRNet has no CIRKD file (the paper's README links none): its row shows `—`.
    tree.update(datasets=["cityscapes"], released=["cirkd"], baseline_seeds=[0, 1, 2])
    with pytest.raises(params.ParamsError, match="lists none of them for cityscapes/hrnet_w48_w18s"):
        params.Params(tree)
    tree.update(released=["baseline", "cirkd"], baseline_seeds=[])
    assert params.Params(tree).released == ["baseline", "cirkd"]


def test_no_method_trained_with_the_baseline_trained():
    tree = copy.deepcopy(TREE)
    tree.update(methods=[], models=[])
    p = params.Params(tree)
    assert (p.methods, p.students, p.released) == ([], ["baseline"], [])


def test_default_params_are_valid():
    p = params.Params(copy.deepcopy(TREE))
    assert p.profile == "demo" and p.train["student"].batch_per_process == p.train["student"].batch_size
    # The default: the methods at one seed, the (cheap) baseline at three.
    assert (p.seeds, p.baseline_seeds, p.students) == ([0], [0, 1, 2], ["baseline", *p.models])
