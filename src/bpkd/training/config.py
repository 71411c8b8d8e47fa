"""Assemble the mmengine/mmseg config of one run (train or test) from params.

The same function serves every profile and dataset: only the numbers change.
Models come from mmseg's config files (``bpkd.models.build``), data through mmseg's
dataset classes and transforms, training through mmengine's ``IterBasedTrainLoop``
with SGD + poly LR as in mmseg's ``schedule_80k``.
"""
from __future__ import annotations

from mmengine.config import Config

from ..datasets.specs import DatasetSpec
from ..params import TrainSettings
from . import finite_loss_hook, memory_format, rng_state  # noqa: F401  (register the hooks)
from .amp import optim_wrapper_config, precision_on_this_host


def data_scale(spec: DatasetSpec, image_hw: tuple[int, int] | None) -> tuple[int, int]:
    """mmseg ``scale`` (w, h): the real datasets use mmseg's; synthetic uses the size it
    was generated at (``image_hw``)."""
    return (image_hw[1], image_hw[0]) if image_hw else spec.scale


def dataset_config(spec: DatasetSpec, data_root: str, split: str, pipeline: list) -> dict:
    cfg = dict(type=spec.mmseg_type, data_root=data_root, data_prefix=dict(spec.prefix(split)), pipeline=pipeline)
    ann = spec.extra.get(f"{split}_ann_file")
    if ann:
        cfg["ann_file"] = ann
    return cfg


def _load_annotations(reduce_zero_label: bool) -> dict:
    # Written out as mmseg's dataset configs do (ADE20K, Pascal Context 59), though the
    # dataset class would apply the same default.
    return dict(type="LoadAnnotations", reduce_zero_label=True) if reduce_zero_label else dict(type="LoadAnnotations")


def train_pipeline(spec: DatasetSpec, crop: tuple[int, int], scale: tuple[int, int]) -> list:
    """mmseg's train pipeline of every dataset config (``_base_/datasets/*.py``)."""
    return [
        dict(type="LoadImageFromFile"),
        _load_annotations(spec.reduce_zero_label),
        dict(type="RandomResize", scale=scale, ratio_range=(0.5, 2.0), keep_ratio=True),
        dict(type="RandomCrop", crop_size=crop, cat_max_ratio=0.75),
        dict(type="RandomFlip", prob=0.5),
        dict(type="PhotoMetricDistortion"),
        dict(type="PackSegInputs"),
    ]


def test_pipeline(scale: tuple[int, int], reduce_zero_label: bool = False) -> list:
    return [
        dict(type="LoadImageFromFile"),
        dict(type="Resize", scale=scale, keep_ratio=True),
        _load_annotations(reduce_zero_label),
        dict(type="PackSegInputs"),
    ]


# What mmseg's IoUMetric(iou_metrics=["mIoU"]) reports, i.e. what a validation logs.
VAL_METRICS = ("aAcc", "mIoU", "mAcc")


def val_parts(spec: DatasetSpec, data_root: str, scale, num_workers: int = 0, split: str = "val") -> dict:
    """Data loader and metric that score ``split`` (training validates on val; evaluate@
    scores the dataset's ``eval_split``)."""
    return dict(
        dataloader=dict(batch_size=1, num_workers=num_workers, persistent_workers=num_workers > 0,
                        sampler=dict(type="DefaultSampler", shuffle=False),
                        dataset=dataset_config(spec, data_root, split, test_pipeline(scale, spec.reduce_zero_label))),
        evaluator=dict(type="IoUMetric", iou_metrics=["mIoU"]),
    )


def train_config(*, model: dict, spec: DatasetSpec, data_root: str, settings: TrainSettings, crop,
                 scale, work_dir: str, log_dir: str, launcher: str = "none", cuda: bool = False,
                 amp_key: str = "train.amp") -> Config:
    """Full Runner config for one training run (``cuda``: for GPUs, which decides the
    mixed-precision wrapper; ``amp_key``: the params key of ``settings.amp``)."""
    val = val_parts(spec, data_root, scale, settings.num_workers)
    nw = settings.num_workers
    amp, fallback = precision_on_this_host(settings.amp, cuda, amp_key)
    if fallback:
        print(fallback, flush=True)
    hooks = [dict(type="FiniteLossHook"), dict(type="RngStateHook")]
    if settings.memory_format == "channels_last":
        hooks.append(dict(type="ChannelsLastHook"))
    extra = dict(compile=True) if settings.compile else {}  # mmengine's Runner compiles train_step
    return Config(dict(
        default_scope="mmseg",
        model=model,
        work_dir=work_dir,
        train_dataloader=dict(
            batch_size=settings.batch_per_process, num_workers=nw, persistent_workers=nw > 0,
            sampler=dict(type="InfiniteSampler", shuffle=True),
            dataset=dataset_config(spec, data_root, "train", train_pipeline(spec, crop, scale))),
        val_dataloader=val["dataloader"],
        val_evaluator=val["evaluator"],
        train_cfg=dict(type="IterBasedTrainLoop", max_iters=settings.iters, val_interval=settings.val_interval),
        val_cfg=dict(type="IntervalValLoop"),  # no duplicate of evaluate@ at max_iters (training.val_loop)
        optim_wrapper=dict(optim_wrapper_config(
            dict(type="SGD", lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay),
            amp, cuda, amp_key), clip_grad=None),
        param_scheduler=[dict(type="PolyLR", eta_min=settings.min_lr, power=settings.poly_power, begin=0,
                              end=settings.iters, by_epoch=False)],
        default_hooks=dict(
            timer=dict(type="IterTimerHook"),
            logger=dict(type="LoggerHook", interval=settings.log_interval, log_metric_by_epoch=False),
            param_scheduler=dict(type="ParamSchedulerHook"),
            # Two kept, not one: mmengine deletes the oldest checkpoint *before* writing the
            # new one and pointing last_checkpoint at it, so with one kept a kill in between
            # leaves last_checkpoint naming a deleted file (found by the kill-anywhere check).
            checkpoint=dict(type="CheckpointHook", by_epoch=False, interval=settings.checkpoint_interval,
                            max_keep_ckpts=2, save_last=True),
            sampler_seed=dict(type="DistSamplerSeedHook"),
        ),
        # Stops at the first NaN/inf loss term, before it is logged or checkpointed; and keeps
        # torch's global random state across checkpoints and validation (resume = no kill).
        custom_hooks=hooks,
        log_processor=dict(by_epoch=False),
        log_level="INFO",
        env_cfg=dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
                     dist_cfg=dict(backend="nccl")),
        # mmengine's own knobs, explicit per profile (params.yaml, docs/reliability.md).
        randomness=dict(seed=settings.seed, deterministic=settings.deterministic,
                        diff_rank_seed=settings.diff_rank_seed),
        visualizer=dict(type="SegLocalVisualizer", name="visualizer",
                        vis_backends=[dict(type="PipelineDVCLiveVisBackend", save_dir=log_dir)]),
        launcher=launcher,
        load_from=None,
        resume=False,
        **extra,
    ))
