"""Model configs from mmseg's config files, adapted to a dataset and a process count."""
from __future__ import annotations

import copy
import os

from mmengine.config import Config, ConfigDict

from .pairs import ARCHS


def mmseg_config_dir() -> str:
    import mmseg

    return os.path.join(os.path.dirname(mmseg.__file__), ".mim", "configs")


def _merge(dst: dict, src: dict) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _merge(dst[k], v)
        else:
            dst[k] = copy.deepcopy(v)


def _set_norm(node, norm_type: str) -> None:
    """SyncBN needs several processes on GPUs; one process (or CPU) uses plain BN."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "norm_cfg" and isinstance(v, dict) and v.get("type") in ("SyncBN", "BN"):
                v["type"] = norm_type
            else:
                _set_norm(v, norm_type)
    elif isinstance(node, list):
        for v in node:
            _set_norm(v, norm_type)


def model_config(arch: str, num_classes: int, crop: tuple[int, int], *, pretrained: bool = False,
                 sync_bn: bool = False, test_mode: str = "whole", slide_stride=None,
                 ignore_index: int = 255) -> ConfigDict:
    """The ``model`` section of mmseg's config for ``arch``, with the dataset's class
    count, crop size and test mode, and BN or SyncBN as the launch requires.

    ``pretrained=False`` drops ImageNet initialisation (the synthetic dataset trains
    from scratch and nothing can be downloaded there); the paper profile keeps it.
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {sorted(ARCHS)}")
    spec = ARCHS[arch]
    cfg = Config.fromfile(os.path.join(mmseg_config_dir(), spec.config))
    model = cfg.model.to_dict()
    _merge(model, spec.overrides)
    _set_norm(model, "SyncBN" if sync_bn else "BN")
    heads = [model["decode_head"]] + ([model["auxiliary_head"]] if "auxiliary_head" in model else [])
    for head in heads:
        for h in head if isinstance(head, list) else [head]:
            h["num_classes"] = num_classes
            h.setdefault("loss_decode", {})
            for loss in h["loss_decode"] if isinstance(h["loss_decode"], list) else [h["loss_decode"]]:
                loss["avg_non_ignore"] = loss.get("avg_non_ignore", False)
            h["ignore_index"] = ignore_index
    model["data_preprocessor"]["size"] = tuple(crop)
    model["data_preprocessor"]["seg_pad_val"] = ignore_index
    if not pretrained:
        model["pretrained"] = None
        backbone = model["backbone"]
        backbone.pop("init_cfg", None)
        if backbone.get("type") == "MobileNetV2":
            backbone["init_cfg"] = None
    if test_mode == "slide":
        # mmseg's configs slide at the training crop with a stride of 2/3 of it (Pascal
        # Context 480/320, Cityscapes 769/513) unless the dataset gives its own.
        stride = tuple(slide_stride) if slide_stride else tuple(-(-2 * c // 3) for c in crop)
        model["test_cfg"] = dict(mode="slide", crop_size=tuple(crop), stride=stride)
    else:
        model["test_cfg"] = dict(mode="whole")
    return ConfigDict(model)


def build_model(cfg: ConfigDict):
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    return MODELS.build(copy.deepcopy(cfg))
