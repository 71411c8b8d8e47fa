"""Registers the synthetic dataset and CamVid with mmseg so they load through the same
``BaseSegDataset`` code path (and transforms) as Cityscapes or ADE20K (mmseg ships no
CamVid class)."""
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from . import camvid
from .synthetic import CLASSES, PALETTE


@DATASETS.register_module()
class SyntheticStreetDataset(BaseSegDataset):
    """The embedded street-scene dataset written by :mod:`bpkd.datasets.synthetic`."""

    METAINFO = dict(classes=CLASSES, palette=PALETTE)

    def __init__(self, img_suffix: str = ".png", seg_map_suffix: str = ".png", **kwargs) -> None:
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, reduce_zero_label=False, **kwargs)


@DATASETS.register_module()
class CamVidDataset(BaseSegDataset):
    """CamVid, SegNet's 11 classes, as ``prepare@camvid`` writes it (void as 255)."""

    METAINFO = dict(classes=camvid.CLASSES, palette=[list(c) for c in camvid.PALETTE])

    def __init__(self, img_suffix: str = ".png", seg_map_suffix: str = ".png", **kwargs) -> None:
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, reduce_zero_label=False, **kwargs)
