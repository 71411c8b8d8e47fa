"""Registers the synthetic dataset with mmseg so it loads through the same
``BaseSegDataset`` code path (and transforms) as Cityscapes or ADE20K."""
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from .synthetic import CLASSES, PALETTE


@DATASETS.register_module()
class SyntheticStreetDataset(BaseSegDataset):
    """The embedded street-scene dataset written by :mod:`bpkd.datasets.synthetic`."""

    METAINFO = dict(classes=CLASSES, palette=PALETTE)

    def __init__(self, img_suffix: str = ".png", seg_map_suffix: str = ".png", **kwargs) -> None:
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, reduce_zero_label=False, **kwargs)
