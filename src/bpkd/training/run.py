"""One training run with mmengine's Runner, exported as a plain mmseg checkpoint."""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from pathlib import Path

from ..datasets import specs
from ..models.build import model_config
from ..models.pairs import arch_of
from ..params import Params
from ..weights import save_checkpoint
from .config import VAL_METRICS, data_scale, train_config
from .launch import cuda as _cuda
from .launch import init_cpu_process_group, launcher
from .resume import fingerprint, prepare_work_dir, resumed_iteration, trim_step_log, val_logged


def prepared_info(data_root: str | Path) -> dict:
    """What ``prepare`` recorded about a prepared dataset (``dataset.json``)."""
    path = Path(data_root) / "dataset.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; run `dvc repro prepare` first")
    return json.loads(path.read_text())


def _image_hw(params: Params, dataset: str, data_root: str, dry_run: bool) -> tuple[int, int] | None:
    """Image size of the prepared set where ``prepare`` chose it (the synthetic scenes'; a
    real dataset written at another size than it comes, ``data.<dataset>.height``/``width``);
    None: the real dataset as it comes, read at mmseg's ``scale``. A real run needs the
    prepared record; a dry run falls back to the params ``prepare`` would use."""
    if not dry_run or (Path(data_root) / "dataset.json").is_file():
        info = prepared_info(data_root)  # a real run fails here if `prepare` has not run
        return tuple(info["image_hw"]) if info.get("image_hw") else None
    if dataset == "synthetic":
        s = params.synthetic()
        return s.height, s.width
    from ..datasets.prepare import image_hw

    return image_hw(params, dataset)


def _norm_and_wrapper(cfg, nproc: int, cuda: bool, wrapper: str = "MMDistributedDataParallel") -> None:
    """Process group backend and DDP wrapper for ``nproc`` processes."""
    cfg.env_cfg.dist_cfg.backend = "nccl" if cuda else "gloo"
    if nproc > 1:
        # mmengine's default wrapper pins device_ids=[LOCAL_RANK], which DDP refuses for
        # a CPU module; on CPU the wrapper gets device_ids=None.
        cfg.model_wrapper_cfg = dict(type=wrapper, broadcast_buffers=False, find_unused_parameters=False,
                                     **({} if cuda else dict(device_ids=None)))


def run_config(params: Params, dataset: str, pair: str, role: str, *, work_dir: str, log_dir: str,
               dry_run: bool = False, cuda: bool | None = None, seed: int | None = None):
    """Config of the run that trains ``role`` ('teacher', 'baseline' or a method) of
    ``pair`` on ``dataset``.

    ``dry_run``: resolve without the prepared dataset on disk and without downloading
    the ImageNet backbone. ``cuda``: resolve for GPUs (SyncBN, NCCL) or CPU; default:
    this machine. ``seed``: a student's seed (params.yaml's ``seeds``), replacing the
    profile's ``randomness.seed`` (the teacher's).
    """
    spec = specs.get(dataset)
    from ..params import SAME_COMPUTE

    settings = params.same_compute() if role == SAME_COMPUTE else params.train["teacher" if role == "teacher" else "student"]
    if seed is not None:
        settings = dataclasses.replace(settings, seed=seed)
    cuda = _cuda() if cuda is None else cuda
    data_root = f"data/prepared/{dataset}"
    scale = data_scale(spec, _image_hw(params, dataset, data_root, dry_run))
    crop = settings.crop or spec.crop
    # SyncBN across processes as mmseg's configs; torch has no SyncBN on CPU.
    sync_bn = settings.nproc > 1 and cuda
    student_role = "teacher" if role == "teacher" else "student"
    arch = arch_of(pair, student_role)
    model = model_config(arch, spec.num_classes, crop, sync_bn=sync_bn,
                         test_mode=spec.test_mode, slide_stride=spec.slide_stride, ignore_index=spec.ignore_index)
    if settings.pretrained_backbone:
        model.pretrained = None
        # The ImageNet initialisation of mmseg's config, fetched through our verified
        # downloader (mmengine's own loader would download unverified, with no timeout);
        # a dry run downloads nothing and shows where the file will be.
        from ..weights.resolve import backbone_init_cfg

        model.backbone.init_cfg = backbone_init_cfg(arch, fetch_now=not dry_run)
    cfg = train_config(model=model.to_dict(), spec=spec, data_root=data_root, settings=settings, crop=crop,
                       scale=scale, work_dir=work_dir, log_dir=log_dir, launcher=launcher(settings.nproc),
                       cuda=cuda, amp_key=f"profiles.{params.profile}.train.amp")
    _norm_and_wrapper(cfg, settings.nproc, cuda)
    return cfg


def train_and_export(cfg, out: str | Path, meta: dict, cost: str | Path | None = None) -> dict:
    """Train with mmengine's Runner, then export the segmentor's weights to ``out``.

    For a distiller, the exported weights are its student's alone (teacher,
    discriminators, connectors and memory banks are dropped). ``cost``: where to write
    what the run cost (``bpkd.training.cost``), after the weights.
    """
    import time

    from mmengine.runner import Runner

    from . import dvclive_backend  # noqa: F401  (registers the DVCLive backend)
    from .val_loop import validates_at  # registers IntervalValLoop
    from .. import distill  # noqa: F401  (registers the distiller)
    from ..datasets import mmseg_dataset  # noqa: F401  (registers the synthetic dataset)

    started = time.perf_counter()
    teacher = cfg.model.get("teacher_checkpoint")
    resuming = prepare_work_dir(cfg, fingerprint(cfg, cfg.train_dataloader.dataset.data_root, teacher))
    cfg.custom_hooks = [*cfg.get("custom_hooks", []), dict(type="WeightsOnlyCheckpointHook")]
    first_iter = resumed_iteration(cfg.work_dir) if resuming else 0
    if resuming:  # DVCLive continues the step log, cut back to the checkpoint, instead of restarting it
        k, loop = first_iter, cfg.train_cfg
        for backend in cfg.visualizer.vis_backends:
            backend["init_kwargs"] = dict(backend.get("init_kwargs") or {}, resume=True)
            log_dir = backend["save_dir"]
        rerun_val = validates_at(k, loop.val_interval, loop.max_iters) and not val_logged(log_dir, k, VAL_METRICS)
        if int(os.environ.get("RANK", "0")) == 0:
            trim_step_log(log_dir, k, VAL_METRICS, rerun_val)
        if rerun_val:
            cfg.custom_hooks.append(dict(type="PendingValidationHook"))
    if cfg.launcher == "pytorch" and cfg.env_cfg.dist_cfg.backend == "gloo":
        init_cpu_process_group()
    deterministic_cuda = bool(cfg.randomness.get("deterministic")) and _cuda()
    if deterministic_cuda:  # cuBLAS needs it before its first call to be deterministic
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    runner = Runner.from_cfg(cfg)
    if deterministic_cuda:
        # mmengine's deterministic mode makes torch raise at the first CUDA op without a
        # deterministic kernel, and every mmseg head has one (bilinear resize's backward):
        # warn instead, keeping cuDNN's deterministic kernels everywhere else.
        import torch

        torch.use_deterministic_algorithms(True, warn_only=True)
    runner.train()
    from mmengine.dist import is_main_process
    from mmengine.model import is_model_wrapper

    def unwrap(m):
        return m.module if is_model_wrapper(m) else m

    # A distiller under MMSeparateDistributedDataParallel has its student wrapped too.
    model = unwrap(runner.model)
    segmentor = unwrap(getattr(model, "student", model))
    if is_main_process():  # one writer of the exported file (DVCLive logs: mmengine's master_only)
        save_checkpoint(segmentor.state_dict(), out, meta=dict(meta, iters=runner.iter))
        if cost:
            from ..atomic import write_json
            from .cost import record

            steps = runner.iter - first_iter
            times = list(runner.message_hub.get_scalar("train/time").data[0]) if steps else []
            write_json(cost, record(times, steps, first_iter, time.perf_counter() - started,
                                    _precision(cfg.optim_wrapper.get("student", cfg.optim_wrapper))))
        # The run is complete and exported: its resumable work dir is no longer needed.
        shutil.rmtree(cfg.work_dir, ignore_errors=True)
    return meta


def distill_config(params: Params, dataset: str, pair: str, method: str, method_params: dict,
                   teacher_checkpoint: str, *, work_dir: str, log_dir: str, dry_run: bool = False,
                   cuda: bool | None = None, seed: int | None = None):
    """Config of a distillation run: the baseline's config with the segmentor replaced
    by a :class:`~bpkd.distill.distiller.SegDistiller` around student and teacher."""
    cuda = _cuda() if cuda is None else cuda
    cfg = run_config(params, dataset, pair, method, work_dir=work_dir, log_dir=log_dir, dry_run=dry_run, cuda=cuda,
                     seed=seed)
    spec = specs.get(dataset)
    from ..distill.band_radius import method_at_image_scale
    from ..distill.losses import METHODS

    # Band radii are params at the paper's resolution; the run draws them at the data's.
    image_hw = _image_hw(params, dataset, f"data/prepared/{dataset}", dry_run)
    scaled = method_at_image_scale(METHODS[method], method_params, image_hw)
    changed = {k: v for k, v in scaled.items() if method_params.get(k) != v}
    if changed:
        print(f"{METHODS[method].GROUP} radii at the paper's resolution, in px of the {image_hw[0]}x{image_hw[1]} "
              f"images: {changed} (bpkd.distill.band_radius)", flush=True)
    method_params = scaled
    nproc = params.train["student"].nproc
    # The distiller has its own train_step (teacher pass, method loss, discriminator
    # step), which MMDistributedDataParallel would bypass; mmengine's wrapper for such
    # models wraps each trainable submodule in DDP and calls the model's train_step.
    _norm_and_wrapper(cfg, nproc, cuda, wrapper="MMSeparateDistributedDataParallel")
    student = cfg.model.to_dict()
    teacher = model_config(arch_of(pair, "teacher"), spec.num_classes, tuple(student["data_preprocessor"]["size"]),
                           sync_bn=nproc > 1 and cuda, test_mode=spec.test_mode,
                           slide_stride=spec.slide_stride, ignore_index=spec.ignore_index).to_dict()
    cfg.model = dict(type="SegDistiller", student=student, teacher=teacher, teacher_checkpoint=teacher_checkpoint,
                     method=method, method_params=method_params)
    if METHODS[method].has_discriminator:
        from ..distill.losses import discriminator

        # The student keeps the run's (mixed-precision) wrapper. The discriminator's wrapper
        # stays fp32: D runs only inside the losses, which disable autocast, so it has
        # nothing to autocast and its fp32 gradients need no loss scaling. Its optimiser and
        # LR schedule are the method's knobs (d_optimizer, d_schedule, ...): Adam at a
        # constant LR in the CIRKD benchmark, SGD or Adam on a poly schedule in the official
        # SKD / IFVD code.
        student = {k: v for k, v in cfg.optim_wrapper.to_dict().items() if k != "clip_grad"}
        d_params = dict(METHODS[method].DEFAULTS, **method_params)
        cfg.optim_wrapper = dict(
            constructor="DistillerOptimWrapperConstructor",
            student=student,
            discriminator=dict(type="OptimWrapper", optimizer=discriminator.optimizer_config(d_params)))
        cfg.param_scheduler = dict(student=cfg.param_scheduler,
                                   discriminator=discriminator.scheduler_config(d_params, cfg.train_cfg.max_iters))
    return cfg


def _precision(wrapper) -> str:
    """What an optim wrapper config trains in (``train.amp``; bpkd.training.amp)."""
    if wrapper["type"] == "OptimWrapper":
        return "fp32 (OptimWrapper)"
    if wrapper["type"] == "CPUBF16AmpOptimWrapper":
        return "bf16 autocast on CPU (CPUBF16AmpOptimWrapper), losses in fp32"
    return f"{wrapper['dtype']} autocast ({wrapper['type']}, loss_scale={wrapper['loss_scale']}), losses in fp32"


def describe(cfg, nproc: int) -> str:
    """The resolved config of a run (``--dry-run``): a summary of the numbers that
    define the protocol, then mmengine's full config text."""
    model = cfg.model.get("student", cfg.model)
    train = cfg.train_dataloader
    crop = next((t["crop_size"] for t in train.dataset.pipeline if t["type"] == "RandomCrop"), None)
    opt = cfg.optim_wrapper.get("optimizer") or cfg.optim_wrapper.student.optimizer
    sched = cfg.param_scheduler if isinstance(cfg.param_scheduler, list) else cfg.param_scheduler["student"]
    norms = sorted({m.group(1) for m in re.finditer(r"norm_cfg=dict\([^)]*type='(\w+)'", cfg.pretty_text)})
    what = (f"SegDistiller(method={cfg.model.method}, teacher={cfg.model.teacher_checkpoint}) student "
            if "student" in cfg.model else "")
    lines = [
        f"# model: {what}{model['type']} / {model['backbone']['type']}; backbone init: "
        f"{model['backbone'].get('init_cfg') or model.get('pretrained') or 'random (from scratch)'}",
        f"# iterations: {cfg.train_cfg.max_iters} (val every {cfg.train_cfg.val_interval})",
        f"# crop (h, w): {tuple(crop)}; batch: {train.batch_size} per process x {nproc} process(es) "
        f"= {train.batch_size * nproc}",
        f"# optimizer: {opt['type']} lr={opt['lr']} momentum={opt.get('momentum')} "
        f"weight_decay={opt.get('weight_decay')}",
        f"# precision: {_precision(cfg.optim_wrapper.get('student', cfg.optim_wrapper))}",
        "# schedule: " + "; ".join(f"{s['type']}(power={s.get('power')}, eta_min={s.get('eta_min')}, "
                                  f"end={s.get('end')})" for s in sched),
        f"# test: {dict(model['test_cfg'])}",
        f"# launcher: {cfg.launcher}; backend: {cfg.env_cfg.dist_cfg.backend}; norm: {', '.join(norms)}",
    ]
    if "discriminator" in cfg.optim_wrapper:
        d_opt, d_sched = cfg.optim_wrapper.discriminator.optimizer, cfg.param_scheduler["discriminator"]
        lines.append(f"# discriminator: {dict(d_opt)}; schedule: "
                     + ("; ".join(f"{s['type']}(power={s['power']}, eta_min={s['eta_min']})" for s in d_sched)
                        or "constant"))
    return "\n".join(lines) + "\n" + cfg.pretty_text
