"""What the pipeline knows about each dataset: the mmseg dataset class that loads it,
its folder layout after ``prepare``, its class count, and the paper's crop size and
test mode (mmseg's own configs for that dataset)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    mmseg_type: str
    num_classes: int
    crop: tuple[int, int]  # paper crop (h, w)
    train_prefix: dict
    val_prefix: dict
    scale: tuple[int, int]  # mmseg `scale` (w, h) for train resizing and whole-image test
    reduce_zero_label: bool = False
    ignore_index: int = 255
    test_mode: str = "whole"  # or "slide"
    slide_stride: tuple[int, int] | None = None
    extra: dict = field(default_factory=dict)
    # File name endings the mmseg dataset class loads (its own defaults); the data
    # validator pairs images with labels by them.
    img_suffix: str = ".png"
    seg_map_suffix: str = ".png"
    # Image/label pairs per split of the full real dataset, checked after ``prepare``
    # unless params.yaml's ``data.<name>.expected_counts`` says otherwise.
    official_counts: dict | None = None
    # A held-out test split besides train and val (CamVid's 233 frames, on which its
    # peers report), prepared and checked like the other two.
    test_prefix: dict | None = None
    # The split evaluate@ scores (the tables' numbers): val, or test where the dataset's
    # published numbers are on its test split (CamVid). Training validates on val.
    eval_split: str = "val"

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits ``prepare`` writes and checks."""
        return ("train", "val", "test") if self.test_prefix else ("train", "val")

    def prefix(self, split: str) -> dict:
        """mmseg's ``data_prefix`` of one split."""
        prefixes = dict(train=self.train_prefix, val=self.val_prefix, test=self.test_prefix)
        if prefixes.get(split) is None:
            raise ValueError(f"{self.name} has no {split!r} split; expected one of {list(self.splits)}")
        return prefixes[split]


DATASETS: dict[str, DatasetSpec] = {
    "synthetic": DatasetSpec(
        name="synthetic",
        mmseg_type="SyntheticStreetDataset",
        num_classes=10,
        crop=(64, 128),
        train_prefix=dict(img_path="img_dir/train", seg_map_path="ann_dir/train"),
        val_prefix=dict(img_path="img_dir/val", seg_map_path="ann_dir/val"),
        scale=(256, 128),
        # Models train on crops a quarter of the scene's side (the demo's 64x128 of
        # 256x512) and are tested where they were trained: sliding windows of the crop,
        # stride 2/3 of it, as mmseg's configs do where the crop is much smaller than the
        # image (docs/instrument.md). A crop the image's size is one window.
        test_mode="slide",
    ),
    "cityscapes": DatasetSpec(
        name="cityscapes",
        mmseg_type="CityscapesDataset",
        num_classes=19,
        crop=(512, 1024),
        train_prefix=dict(img_path="leftImg8bit/train", seg_map_path="gtFine/train"),
        val_prefix=dict(img_path="leftImg8bit/val", seg_map_path="gtFine/val"),
        scale=(2048, 1024),
        img_suffix="_leftImg8bit.png",
        seg_map_suffix="_gtFine_labelTrainIds.png",
        official_counts={"train": 2975, "val": 500},
    ),
    "ade20k": DatasetSpec(
        name="ade20k",
        mmseg_type="ADE20KDataset",
        num_classes=150,
        crop=(512, 512),
        train_prefix=dict(img_path="images/training", seg_map_path="annotations/training"),
        val_prefix=dict(img_path="images/validation", seg_map_path="annotations/validation"),
        scale=(2048, 512),
        reduce_zero_label=True,
        img_suffix=".jpg",
        official_counts={"train": 20210, "val": 2000},
    ),
    "pascal_context59": DatasetSpec(
        name="pascal_context59",
        mmseg_type="PascalContextDataset59",
        num_classes=59,
        crop=(480, 480),
        train_prefix=dict(img_path="JPEGImages", seg_map_path="SegmentationClassContext"),
        val_prefix=dict(img_path="JPEGImages", seg_map_path="SegmentationClassContext"),
        scale=(520, 520),
        reduce_zero_label=True,
        test_mode="slide",
        slide_stride=(320, 320),
        img_suffix=".jpg",
        extra=dict(train_ann_file="ImageSets/SegmentationContext/train.txt",
                   val_ann_file="ImageSets/SegmentationContext/val.txt"),
        # VOC2010's train/val lists, which bpkd.datasets.pascal_context converts (mmseg's
        # detail-based converter drops 3 of these images: 4996/5104).
        official_counts={"train": 4998, "val": 5105},
    ),
    "camvid": DatasetSpec(
        name="camvid",
        mmseg_type="CamVidDataset",
        num_classes=11,
        # CIRKD's CamVid protocol (the peers' numbers on this split): 360x360 crops of
        # the 480x360 frames. Tested by sliding windows of the training crop, as synthetic
        # is (docs/instrument.md, "test where the models are trained"): a crop the size of
        # the frame is one window, the paper-like 360x360 two.
        crop=(360, 360),
        train_prefix=dict(img_path="img_dir/train", seg_map_path="ann_dir/train"),
        val_prefix=dict(img_path="img_dir/val", seg_map_path="ann_dir/val"),
        test_prefix=dict(img_path="img_dir/test", seg_map_path="ann_dir/test"),
        scale=(480, 360),
        official_counts={"train": 367, "val": 101, "test": 233},
        eval_split="test",
        test_mode="slide",
    ),
}


def get(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
    return DATASETS[name]
