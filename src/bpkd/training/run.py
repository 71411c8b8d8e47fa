"""One training run with mmengine's Runner, exported as a plain mmseg checkpoint."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..datasets import specs
from ..models.build import model_config
from ..models.pairs import arch_of
from ..params import Params
from ..weights import save_checkpoint
from .config import data_scale, train_config
from .resume import fingerprint, prepare_work_dir


def prepared_info(data_root: str | Path) -> dict:
    """What ``prepare`` recorded about a prepared dataset (``dataset.json``)."""
    path = Path(data_root) / "dataset.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; run `dvc repro prepare` first")
    return json.loads(path.read_text())


def launcher() -> str:
    """'pytorch' under torchrun (several processes), else 'none'."""
    return "pytorch" if int(os.environ.get("WORLD_SIZE", "1")) > 1 else "none"


def run_config(params: Params, dataset: str, pair: str, role: str, *, work_dir: str, log_dir: str):
    """Config of the run that trains ``role`` ('teacher', 'baseline' or a method) of
    ``pair`` on ``dataset``."""
    spec = specs.get(dataset)
    settings = params.train["teacher" if role == "teacher" else "student"]
    data_root = f"data/prepared/{dataset}"
    info = prepared_info(data_root)
    scale = data_scale(spec, tuple(info["image_hw"]) if info.get("image_hw") else None)
    crop = settings.crop or spec.crop
    sync_bn = launcher() == "pytorch" and _cuda()
    student_role = "teacher" if role == "teacher" else "student"
    arch = arch_of(pair, student_role)
    model = model_config(arch, spec.num_classes, crop, sync_bn=sync_bn,
                         test_mode=spec.test_mode, slide_stride=spec.slide_stride, ignore_index=spec.ignore_index)
    if settings.pretrained_backbone:
        # The ImageNet initialisation of mmseg's config, fetched through our verified
        # downloader (mmengine's own loader would download unverified, with no timeout).
        from ..weights.resolve import backbone_init_cfg

        model.pretrained = None
        model.backbone.init_cfg = backbone_init_cfg(arch)
    cfg = train_config(model=model.to_dict(), spec=spec, data_root=data_root, settings=settings, crop=crop,
                       scale=scale, work_dir=work_dir, log_dir=log_dir, launcher=launcher())
    if _cuda():
        cfg.env_cfg.dist_cfg.backend = "nccl"
    else:
        cfg.env_cfg.dist_cfg.backend = "gloo"
    return cfg


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def train_and_export(cfg, out: str | Path, meta: dict) -> dict:
    """Train with mmengine's Runner, then export the segmentor's weights to ``out``.

    For a distiller, the exported weights are its student's alone (teacher,
    discriminators, connectors and memory banks are dropped).
    """
    from mmengine.runner import Runner

    from . import dvclive_backend  # noqa: F401  (registers the DVCLive backend)
    from .. import distill  # noqa: F401  (registers the distiller)
    from ..datasets import mmseg_dataset  # noqa: F401  (registers the synthetic dataset)

    teacher = cfg.model.get("teacher_checkpoint")
    resuming = prepare_work_dir(cfg, fingerprint(cfg, cfg.train_dataloader.dataset.data_root, teacher))
    cfg.custom_hooks = [*cfg.get("custom_hooks", []), dict(type="WeightsOnlyCheckpointHook")]
    if resuming:  # DVCLive continues the step log instead of starting it again
        for backend in cfg.visualizer.vis_backends:
            backend["init_kwargs"] = dict(backend.get("init_kwargs") or {}, resume=True)
    runner = Runner.from_cfg(cfg)
    runner.train()
    model = runner.model.module if hasattr(runner.model, "module") else runner.model
    segmentor = getattr(model, "student", model)
    from mmengine.dist import is_main_process

    if is_main_process():
        save_checkpoint(segmentor.state_dict(), out, meta=dict(meta, iters=runner.iter))
        # The run is complete and exported: its resumable work dir is no longer needed.
        shutil.rmtree(cfg.work_dir, ignore_errors=True)
    return meta


def distill_config(params: Params, dataset: str, pair: str, method: str, method_params: dict,
                   teacher_checkpoint: str, *, work_dir: str, log_dir: str):
    """Config of a distillation run: the baseline's config with the segmentor replaced
    by a :class:`~bpkd.distill.distiller.SegDistiller` around student and teacher."""
    cfg = run_config(params, dataset, pair, method, work_dir=work_dir, log_dir=log_dir)
    spec = specs.get(dataset)
    student = cfg.model.to_dict()
    teacher = model_config(arch_of(pair, "teacher"), spec.num_classes, tuple(student["data_preprocessor"]["size"]),
                           sync_bn=launcher() == "pytorch" and _cuda(), test_mode=spec.test_mode,
                           slide_stride=spec.slide_stride, ignore_index=spec.ignore_index).to_dict()
    cfg.model = dict(type="SegDistiller", student=student, teacher=teacher, teacher_checkpoint=teacher_checkpoint,
                     method=method, method_params=method_params)
    from ..distill.losses import METHODS

    if METHODS[method].has_discriminator:
        d_lr = float(method_params.get("d_lr", METHODS[method].DEFAULTS["d_lr"]))
        cfg.optim_wrapper = dict(
            constructor="DistillerOptimWrapperConstructor",
            student=dict(type="OptimWrapper", optimizer=cfg.optim_wrapper.optimizer.to_dict()),
            discriminator=dict(type="OptimWrapper", optimizer=dict(type="Adam", lr=d_lr, betas=(0.9, 0.99))))
        # Poly LR for the student; the discriminator keeps a constant LR (CIRKD benchmark).
        cfg.param_scheduler = dict(student=cfg.param_scheduler, discriminator=[])
    return cfg
