"""The paper's four teacher–student pairs, each architecture named by the mmseg
config file it comes from (``mmseg/.mim/configs``) and, where mmseg has no config
for it, by the overrides that derive it from the nearest one."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Arch:
    """One architecture: a display name as in the paper's tables, the mmseg config it
    is built from, and model overrides merged on top of that config's ``model``."""

    name: str
    config: str
    overrides: dict = field(default_factory=dict)


# mmseg has no ISANet-R18: derive it from ISANet-R50 the way mmseg derives
# PSPNet-R18 from PSPNet-R50 (ResNet-18 V1c, 512-channel C5, 256-channel C4),
# as the BPKD eval configs do.
_R18_HEADS = dict(
    pretrained="open-mmlab://resnet18_v1c",
    backbone=dict(depth=18),
    decode_head=dict(in_channels=512, channels=128),
    auxiliary_head=dict(in_channels=256, channels=64),
)

ARCHS: dict[str, Arch] = {
    "pspnet_r101": Arch("PSPNet-R101", "pspnet/pspnet_r101-d8_4xb2-80k_cityscapes-512x1024.py"),
    "pspnet_r18": Arch("PSPNet-R18", "pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py"),
    "hrnet_w48": Arch("HRNetV2P-W48", "hrnet/fcn_hr48_4xb2-80k_cityscapes-512x1024.py"),
    "hrnet_w18s": Arch("HRNetV2P-W18S", "hrnet/fcn_hr18s_4xb2-80k_cityscapes-512x1024.py"),
    "deeplabv3p_r101": Arch("DeeplabV3P-R101", "deeplabv3plus/deeplabv3plus_r101-d8_4xb2-80k_cityscapes-512x1024.py"),
    "deeplabv3p_mv2": Arch("DeeplabV3P+MV2", "mobilenet_v2/mobilenet-v2-d8_deeplabv3plus_4xb2-80k_cityscapes-512x1024.py"),
    "isanet_r101": Arch("ISANet-R101", "isanet/isanet_r101-d8_4xb2-80k_cityscapes-512x1024.py"),
    "isanet_r18": Arch("ISANet-R18", "isanet/isanet_r50-d8_4xb2-80k_cityscapes-512x1024.py", _R18_HEADS),
    # No pair's student: the architecture of mmseg's Cityscapes PSPNet-R18 model-zoo file,
    # which the paper's README's Cityscapes table reports (and links) as its PSPNet-R18
    # baseline. ResNet-18 with torchvision's single 7x7 stem ('ResNet', from
    # 'torchvision://resnet18') instead of the V1c deep stem; heads as pspnet_r18.
    # Only released@ builds it (registry.yaml names it as that entry's `arch`).
    "pspnet_r18b": Arch("PSPNet-R18b", "pspnet/pspnet_r18b-d8_4xb2-80k_cityscapes-512x1024.py"),
}


@dataclass(frozen=True)
class Pair:
    teacher: str
    student: str


PAIRS: dict[str, Pair] = {
    "pspnet_r101_r18": Pair("pspnet_r101", "pspnet_r18"),
    "hrnet_w48_w18s": Pair("hrnet_w48", "hrnet_w18s"),
    "deeplabv3p_r101_mv2": Pair("deeplabv3p_r101", "deeplabv3p_mv2"),
    "isanet_r101_r18": Pair("isanet_r101", "isanet_r18"),
}


def arch_of(pair: str, role: str) -> str:
    """Architecture key of ``role`` ('teacher' or any student name) in ``pair``."""
    if pair not in PAIRS:
        raise ValueError(f"unknown pair {pair!r}; expected one of {sorted(PAIRS)}")
    return PAIRS[pair].teacher if role == "teacher" else PAIRS[pair].student
