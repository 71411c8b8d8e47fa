"""FLOPs conventions (hand-counted on a tiny net), the CLI's JSON rows, and one
real architecture against the seed's numbers."""
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bpkd.models.complexity import count_flops, main
from bpkd.models.mmcv1_flops import mmcv1_flop_count


class _Tiny(nn.Module):
    """conv(bias) -> BN -> ReLU -> maxpool -> nn.Upsample, then a functional
    bilinear resize and an addition (which mmcv 1.x does not count)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1, bias=True)
        self.bn = nn.BatchNorm2d(3)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(2)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x):                       # x: 1x2x4x4
        y = self.up(self.pool(self.relu(self.bn(self.conv(x)))))   # 1x3x4x4
        y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)  # 1x3x8x8
        return y + y


def _inputs():
    torch.manual_seed(0)
    return (torch.randn(1, 2, 4, 4),)


def test_mmcv1_convention_by_hand():
    model = _Tiny().eval()
    with torch.no_grad():
        got = mmcv1_flop_count(model, _inputs())
    # conv: 16 output positions x (3 out x 2 in x 3x3) MACs = 16 x 54 = 864, + bias 3 x 16 = 48 -> 912
    # BN (affine): 2 x 48 input elements = 96; ReLU: 48 output elements; MaxPool: 48 input elements;
    # nn.Upsample: 3x4x4 = 48 output elements; F.interpolate and the addition: 0 (not modules).
    assert got == {"Conv2d": 912, "BatchNorm2d": 96, "ReLU": 48, "MaxPool2d": 48, "Upsample": 48}
    assert count_flops(model, _inputs(), "mmcv1") == 1152  # 912 + 96 + 48 + 48 + 48


def test_mmcv1_convention_counts_linear_without_bias_and_skips_unlisted_modules():
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 5), nn.Sigmoid()).eval()
    # Linear: 8 input elements x 5 output features = 40 (bias not counted); Sigmoid is not in mmcv 1.x's list.
    assert mmcv1_flop_count(model, (torch.randn(1, 2, 2, 2),)) == {"Linear": 40}


def test_mmengine_convention_by_hand():
    model = _Tiny().eval()
    with torch.no_grad():
        got = count_flops(model, _inputs(), "mmengine")
    # conv MACs 864 (bias ignored) + eval BN 2 x 48 = 96 + nearest upsample 1 x 48 output elements
    # + bilinear interpolate 4 x (3x8x8 = 192) = 768; ReLU, max pooling and the addition count 0.
    assert got == 864 + 96 + 48 + 768


def test_unknown_convention_is_refused():
    with pytest.raises(ValueError, match="mmcv2"):
        count_flops(_Tiny().eval(), _inputs(), "mmcv2")


def test_cli_json_rows(capsys):
    # The default counts the seed's 150-class heads whatever the dataset: its three
    # tables print the same FLOPs/Params, so that is what the command prints.
    main(["--dataset", "cityscapes", "--json", "--arch", "pspnet_r18", "--input-size", "64", "64"])
    rows = json.loads(capsys.readouterr().out)
    assert [r["arch"] for r in rows] == ["pspnet_r18"]
    row = rows[0]
    assert set(row) == {"model", "arch", "flops_g", "params_m", "num_classes", "convention", "input"}
    assert (row["model"], row["num_classes"], row["convention"], row["input"]) == ("PSPNet-R18", 150, "mmengine",
                                                                                 "64x64")
    assert row["params_m"] == 12.82  # the seed's number: its heads have ADE20K's 150 classes

    main(["--dataset", "cityscapes", "--json", "--arch", "pspnet_r18", "--input-size", "64", "64",
          "--heads", "dataset", "--convention", "mmcv1"])
    row = json.loads(capsys.readouterr().out)[0]
    assert (row["num_classes"], row["convention"]) == (19, "mmcv1")
    assert row["params_m"] == 12.79  # 19-class heads: 0.03 M below the seed's 12.82


def test_unknown_heads_are_refused():
    from bpkd.models.complexity import head_classes

    assert (head_classes("pascal_context59", "seed"), head_classes("pascal_context59", "dataset")) == (150, 59)
    with pytest.raises(ValueError, match="'paper'"):
        head_classes("cityscapes", "paper")


def test_pspnet_r18_reproduces_the_seed():
    from bpkd.models.complexity import SEED_NUM_CLASSES, complexity

    row = complexity("pspnet_r18", SEED_NUM_CLASSES)
    assert (row["flops_g"], row["params_m"]) == (54.53, 12.82)  # seed: 54.53 G, 12.82 M
