"""Band radii at the paper's resolution, converted to the data's images (hand-computed)."""
import pytest

from bpkd.distill.band_radius import band_radius, method_at_image_scale
from bpkd.distill.losses.bpkd import BPKDLoss
from bpkd.distill.losses.cwd import CWDLoss
from bpkd.training.run import distill_config
from bpkd.params import Params


@pytest.mark.parametrize("radius, hw, expected", [
    (3, (256, 512), 1),    # the demo: 3 * 256/1024 = 0.75 -> 1
    (3, (64, 128), 1),     # smoke: 0.1875 rounds to 0, and a band is at least 1 px
    (3, (512, 1024), 2),   # 1.5: halves round up
    (10, (256, 512), 3),   # 2.5 -> 3, where round() would give 2
    (5, (256, 512), 1),    # 1.25
    (12, (256, 512), 3),   # a demo radius ablation steps by 4
    (3, (1024, 2048), 3),  # the paper's frames
    (3, None, 3),          # a real dataset, read at its own resolution
])
def test_radius_scales_with_the_image_height(radius, hw, expected):
    assert band_radius(radius, hw) == expected


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3"])
def test_radius_must_be_a_positive_int(bad):
    with pytest.raises(ValueError, match="band radius must be an integer >= 1"):
        band_radius(bad, (256, 512))


def test_only_a_methods_radii_are_converted():
    params = {"edge_width": 3, "edge_weight": 50.0, "alpha": 2.0}
    assert method_at_image_scale(BPKDLoss, params, (256, 512)) == {"edge_width": 1, "edge_weight": 50.0, "alpha": 2.0}
    assert params["edge_width"] == 3  # the caller's dict is left alone
    assert method_at_image_scale(BPKDLoss, {}, (256, 512)) == {"edge_width": 1}  # the default radius, converted
    assert method_at_image_scale(CWDLoss, {"weight": 3.0, "tau": 4.0}, (256, 512)) == {"weight": 3.0, "tau": 4.0}


def test_the_demo_distills_bpkd_with_the_converted_radius(tmp_path, monkeypatch):
    import yaml

    from conftest import REPO

    tree = yaml.safe_load((REPO / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)  # no prepared data here: the dry run reads the profile's scene size
    cfg = distill_config(Params(dict(tree, profile="demo")), "synthetic", "hrnet_w48_w18s", "bpkd",
                         dict(tree["loss"]), "t.pth", work_dir="w", log_dir="l", dry_run=True, cuda=False)
    assert tree["loss"]["edge_width"] == 3
    assert cfg.model.method_params["edge_width"] == 1
    assert {k: v for k, v in cfg.model.method_params.items() if k != "edge_width"} == \
        {k: v for k, v in tree["loss"].items() if k != "edge_width"}
