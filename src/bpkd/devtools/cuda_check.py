"""The CUDA check of every stage, in one call on a GPU machine (docs/gpu.md).

    python -m bpkd.devtools.cuda_check --out DIR [--deadline-s 500] [--phases tensors stages cost] [--dry-run]

What the CPU tests cannot run, run on the GPU, in this order (a phase that would
not finish before ``--deadline-s`` is skipped and said so):

1. ``tensors``, in this process: a BPKD and an SKDS ``SegDistiller`` (HRNetV2P-W48 ->
   W18-S, the smoke crop) train 3 steps on CUDA under each mixed precision, with the
   student's optim wrapper built as the pipeline builds it
   (``bpkd.training.amp.optim_wrapper_config``): under fp16 mmengine's
   ``AmpOptimWrapper`` must hold an enabled ``GradScaler`` whose scale stays finite
   and positive, under bf16 a disabled one; every loss finite; SKDS's discriminator
   wrapper stays the plain fp32 one. Then BPKD's band masks on CUDA, computed in fp16
   (``bpkd.distill.masks._work_dtype``), against the same masks on CPU (fp32): the
   largest difference and the band pixel counts.
2. ``stages fp32``: a scratch copy of the repository (:func:`bpkd.devtools.scratch.copy_repo`;
   without git, a plain copy and DVC without SCM) on the ``smoke`` profile with
   ``train.amp: fp32`` and ``train.num_workers: 2`` (the loaders' worker processes,
   which the CPU profiles never start), reproduced whole with ``dvc repro`` on CUDA
   (``bpkd.devtools.check``: every stage recorded, ``dvc status`` clean, the
   tables written). The pipeline's wheels, dvc's included, fit the device's transfer
   limit (``bpkd.devtools.gpu_wheels``), so this is DVC itself, not the stage scripts
   one by one.
3. ``loader``: the smoke train dataloader as the pipeline configures it
   (``bpkd.training.config.train_config``), built by mmengine's Runner with 2 workers
   and ``pin_memory=True``, which the pipeline does not set (mmengine's default is
   False): two batches, their tensors pinned, moved to the GPU.
4. ``stages bf16`` and ``stages fp16``: the same copy with ``train.amp`` set, its
   training stages rerun (``dvc repro --single-item --force``: the teacher, the
   baseline at its first seed, each method's distillation at the first seed; the
   evaluations always run in fp32). ``FiniteLossHook`` stops a run at the first
   non-finite loss, so a stage that finishes trained on finite losses.
5. ``syncbn``: with several GPUs, the teacher stage again with
   ``train.nproc = min(2, GPUs)``: SyncBN, NCCL and torchrun. With one GPU it says
   "one GPU: SyncBN not exercised".
6. ``cost``: ``python -m bpkd.bench.cost --device cuda --geometry cityscapes`` over
   the paper's four pairs (``bpkd.models.pairs.PAIRS``, params.yaml's first), its
   output in ``DIR/cost.md``; its rows reach the log as they are measured, so a run the
   deadline cuts still gives the first pairs (``--phases cost`` runs it alone).

``--phases`` picks among ``tensors`` (1), ``stages`` (2-5) and ``cost`` (6).

Writes ``DIR/cuda_check.log`` (everything printed), ``DIR/repro_fp32.log``,
``DIR/stages_bf16.log``, ``DIR/stages_fp16.log``, ``DIR/cost.md``; ends with one line per
phase (PASS, FAIL or SKIP) and exits 1 if any failed. Without a CUDA device it
refuses at once (exit 2) and says why. ``--dry-run`` needs no GPU: it makes the
scratch copy and prints what each phase would run.
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import yaml

from .scratch import REPO, copy_repo, run, tool_env

PROFILE = "smoke"
LOADER_WORKERS = 2
DEFAULT_DEADLINE_S = 500  # one device call runs at most 600 s, the wheels' install and the start included
PHASE_GROUPS = ("tensors", "stages", "cost")
# Rough seconds a phase needs on one H100 with 16 cores; a phase starts only if this
# much is left before the deadline.
NEEDS_S = {"tensors": 30, "stages fp32": 150, "loader": 20, "stages bf16": 60, "stages fp16": 60, "syncbn": 40,
           "cost": 120}


class Log:
    """Prints and appends to ``DIR/cuda_check.log``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(path, "a")

    def __call__(self, *parts) -> None:
        line = " ".join(str(p) for p in parts)
        print(line, flush=True)
        self.file.write(line + "\n")
        self.file.flush()


def no_cuda_reason() -> str | None:
    """Why this machine cannot run the check, or None if it can."""
    import torch

    if torch.cuda.is_available():
        return None
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
    return (f"no CUDA device: torch {torch.__version__} ({build}) sees none. This check runs on a GPU machine "
            f"(docs/gpu.md, 'The one-call device check'); the CPU paths are tested by `make test`")


def device_line() -> str:
    import torch

    n = torch.cuda.device_count()
    names = ", ".join(torch.cuda.get_device_name(i) for i in range(n))
    return (f"{n} GPU(s): {names}; torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN "
            f"{torch.backends.cudnn.version()}, bf16 supported: {torch.cuda.is_bf16_supported()}; "
            f"python {sys.version.split()[0]}")


# ---------------------------------------------------------------------------------
# Phase 1: tensors.


def _distiller_steps(method: str, amp: str, log) -> None:
    """Three train steps of a ``method`` distiller on CUDA under ``amp``, its wrappers
    built as the pipeline's (``training.amp``, ``training.run.distill_config``)."""
    import torch
    from mmengine.optim import OptimWrapperDict
    from mmengine.registry import OPTIM_WRAPPERS, OPTIMIZERS, DefaultScope

    from ..datasets.synthetic import CLASSES
    from ..distill.distiller import DistillerOptimWrapperConstructor, SegDistiller
    from ..distill.losses import METHODS, PARAM_GROUPS
    from ..distill.method_config import active_params
    from ..models.build import model_config
    from ..models.pairs import PAIRS
    from ..training.amp import optim_wrapper_config
    from ..bench.distill import _batch

    DefaultScope.get_instance(f"bpkd-cuda-check-{method}-{amp}", scope_name="mmseg")
    tree = yaml.safe_load((REPO / "params.yaml").read_text())
    group = PARAM_GROUPS[method]
    knobs = active_params(method, dict(tree.get(group) or {}), group)[1]
    crop = tuple(tree["profiles"][PROFILE]["train"]["crop"])
    pair = PAIRS["hrnet_w48_w18s"]
    student = model_config(pair.student, len(CLASSES), crop).to_dict()
    teacher = model_config(pair.teacher, len(CLASSES), crop).to_dict()
    model = SegDistiller(student, teacher, None, method, knobs).cuda().train()
    sgd = dict(type="SGD", lr=0.01, momentum=0.9, weight_decay=5e-4)
    student_cfg = optim_wrapper_config(sgd, amp, True, f"profiles.{PROFILE}.train.amp")
    if METHODS[method].has_discriminator:
        from ..distill.losses.discriminator import optimizer_config

        # As training.run.distill_config: the student's wrapper mixed-precision, D's plain fp32.
        opt = DistillerOptimWrapperConstructor(dict(
            student=student_cfg,
            discriminator=dict(type="OptimWrapper", optimizer=optimizer_config(model.method.params))))(model)
    else:
        cfg = dict(student_cfg)
        optimizer = OPTIMIZERS.build(dict(cfg.pop("optimizer"),
                                          params=[p for p in model.parameters() if p.requires_grad]))
        opt = OptimWrapperDict(student=OPTIM_WRAPPERS.build(dict(cfg, optimizer=optimizer)))
    wrapper = opt["student"]
    data = _batch(2, *crop)
    for step in range(3):
        log_vars = model.train_step(data, opt)
        values = {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in log_vars.items()}
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
        if bad:
            raise AssertionError(f"{method} under {amp}, step {step}: non-finite losses {bad}")
    scaler = getattr(wrapper, "loss_scaler", None)
    if type(wrapper).__name__ != "AmpOptimWrapper" or scaler is None:
        raise AssertionError(f"{method} under {amp}: the student's wrapper is {type(wrapper).__name__}, "
                             f"not mmengine's AmpOptimWrapper with a loss scaler")
    if amp == "fp16":
        scale = float(scaler.get_scale())
        if not scaler.is_enabled() or not math.isfinite(scale) or scale <= 0:
            raise AssertionError(f"{method} under fp16: loss scaler enabled={scaler.is_enabled()}, scale={scale}")
        log(f"  {method} fp16: AmpOptimWrapper, GradScaler enabled, scale after 3 steps {scale:g}; "
            f"losses finite (loss {values.get('loss', float('nan')):.3g})")
    else:
        if scaler.is_enabled():
            raise AssertionError(f"{method} under {amp}: the loss scaler is enabled (bf16 needs none)")
        log(f"  {method} {amp}: AmpOptimWrapper, loss scaler disabled; losses finite")
    if "discriminator" in opt and type(opt["discriminator"]).__name__ != "OptimWrapper":
        raise AssertionError(f"{method}: the discriminator's wrapper is {type(opt['discriminator']).__name__}")
    del model, opt, wrapper
    torch.cuda.empty_cache()


def _band_masks(log) -> None:
    """BPKD's band masks on CUDA (fp16 work tensors) against CPU (fp32)."""
    import numpy as np
    import torch

    from ..datasets.synthetic import render_scene
    from ..distill.masks import _work_dtype, soft_edge_mask

    dtype = _work_dtype(torch.device("cuda"))
    if dtype != torch.float16:
        raise AssertionError(f"masks._work_dtype(cuda) is {dtype}, expected torch.float16")
    labels = torch.stack([torch.from_numpy(render_scene(np.random.default_rng([0, 5, i]), 512, 1024)[1]
                                           .astype(np.int64)) for i in range(2)])
    worst = 0.0
    for out_size in ((64, 128), (65, 129)):  # divisible (avg-pool) and not (adaptive)
        cpu, cpu_px = soft_edge_mask(labels, 19, 3, out_size, return_band_pixels=True)
        gpu, gpu_px = soft_edge_mask(labels.cuda(), 19, 3, out_size, return_band_pixels=True)
        diff = float((gpu.cpu() - cpu).abs().max())
        worst = max(worst, diff)
        if not torch.equal(gpu_px.cpu(), cpu_px):
            raise AssertionError(f"band pixels differ at {out_size}: cuda {gpu_px.tolist()} cpu {cpu_px.tolist()}")
        log(f"  band masks 2x512x1024 -> {out_size}, 19 classes, r=3: max |cuda fp16 - cpu fp32| = {diff:.2e}; "
            f"band pixels equal ({int(cpu_px.sum())})")
    if worst > 1e-3:  # fp16 holds k/64 exactly; adaptive windows' averages round at ~5e-4
        raise AssertionError(f"band masks differ by up to {worst:.2e} between CUDA fp16 and CPU fp32")


def phase_tensors(log, precisions) -> str:
    for amp in precisions:
        for method in ("bpkd", "skds"):
            _distiller_steps(method, amp, log)
    _band_masks(log)
    return f"loss scaler and AMP wrappers ({', '.join(precisions)}), fp16 band masks"


# ---------------------------------------------------------------------------------
# Phases 2-5: the stages, in a scratch copy.


def _ignored_in_copy(root: Path):
    """Without git: the paths copy_repo would not copy (generated, ignored or regenerated)."""
    skip = {".git", ".venv", ".whl", ".gl", "metrics", "dvc_plots", ".pytest_cache", "__pycache__"}

    def ignore(folder, names):
        rel = Path(folder).resolve().relative_to(root)
        out = {n for n in names if n in skip or n.endswith((".pyc", ".egg-info")) or n == "dvc.lock"}
        if rel == Path("data"):
            out |= {n for n in names if n != "raw"}
        if rel == Path(".dvc"):
            out |= {n for n in names if n in ("cache", "tmp")}
        return out

    return ignore


def scratch_copy(dst: Path, log, src: Path = REPO) -> Path:
    """:func:`copy_repo` of ``src`` on the smoke profile; where there is no git (a
    copied tree, or no git program), a plain copy of the same files and DVC without SCM."""
    try:
        return copy_repo(dst, profile=PROFILE, src=src)
    except (subprocess.CalledProcessError, FileNotFoundError, AssertionError) as err:
        log(f"  copy_repo needs git ({type(err).__name__}: {str(err).strip()[:200]}); plain copy, DVC without SCM")
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, ignore=_ignored_in_copy(src.resolve()))
    params = dst / "params.yaml"
    params.write_text(params.read_text().replace("profile: demo", f"profile: {PROFILE}", 1))
    run([sys.executable, "-m", "dvc", "config", "core.no_scm", "true"], dst)
    return dst


def set_train(repo: Path, **values) -> None:
    """Set ``profiles.<smoke>.train.<key>`` in the copy's params.yaml."""
    path = repo / "params.yaml"
    tree = yaml.safe_load(path.read_text())
    tree["profiles"][PROFILE]["train"].update(values)
    path.write_text(yaml.safe_dump(tree, sort_keys=False))


def training_stages(repo: Path) -> list[str]:
    """The copy's training stages at the first seed: teacher, baseline, each distillation."""
    tree = yaml.safe_load((repo / "params.yaml").read_text())
    seed, base_seed = tree["seeds"][0], tree["baseline_seeds"][0]
    names = run(["dvc", "stage", "list", "--name-only"], repo).stdout.split()
    return ([n for n in names if n.startswith("teacher@")]
            + [n for n in names if n.startswith("baseline@") and n.endswith(f"-{base_seed}")]
            + [n for n in names if n.startswith("distill@") and n.endswith(f"-{seed}")])


def repro_stages(repo: Path, stages: list[str], log_path: Path, echo) -> int:
    """``dvc repro --single-item --force`` of ``stages``, its output in ``log_path``."""
    start = time.monotonic()
    with open(log_path, "w") as out:
        proc = subprocess.Popen(["dvc", "repro", "--single-item", "--force", *stages], cwd=repo, env=tool_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        for line in proc.stdout:
            out.write(line)
            if line.startswith("Running stage"):
                echo(f"  [{time.monotonic() - start:5.0f} s] {line.strip()}")
        return proc.wait()


def phase_stages_fp32(repo: Path, out: Path, log) -> str:
    from . import check

    set_train(repo, amp="fp32", num_workers=LOADER_WORKERS)
    result = check.check(repo, echo=lambda line: log(" ", line))
    shutil.copy(repo / check.LOG, out / "repro_fp32.log")
    if not result.ok:
        raise AssertionError(f"not recorded: {', '.join(result.missing) or '-'}; dvc status: {result.status[:500]}; "
                             f"tables written: {bool(result.tables)} (repro_fp32.log)")
    return f"{len(result.stages)} stages by dvc repro, status clean, num_workers={LOADER_WORKERS}"


def phase_loader(repo: Path, log) -> str:
    """The pipeline's train dataloader with workers and pinned memory, built by mmengine."""
    import torch
    from mmengine.runner import Runner

    from .. import params as params_mod
    from ..datasets import mmseg_dataset  # noqa: F401  (registers the synthetic dataset)
    from ..training.run import run_config

    here = os.getcwd()
    os.chdir(repo)  # run_config reads data/prepared/<dataset> relative to the repository
    try:
        p = params_mod.load("params.yaml")
        cfg = run_config(p, "synthetic", p.pairs[0], "baseline", work_dir=tempfile.mkdtemp(), log_dir=tempfile.mkdtemp(),
                         cuda=True)
        loader_cfg = cfg.train_dataloader.to_dict()
        loader_cfg.update(num_workers=LOADER_WORKERS, persistent_workers=True, pin_memory=True)
        from mmengine.registry import DefaultScope

        DefaultScope.get_instance("bpkd-cuda-check-loader", scope_name="mmseg")
        loader = Runner.build_dataloader(loader_cfg, seed=0)
        it = iter(loader)
        for i in range(2):
            batch = next(it)
            pinned = all(t.is_pinned() for t in batch["inputs"])
            if not pinned:
                raise AssertionError(f"batch {i}: inputs not pinned with pin_memory=True")
            moved = [t.cuda(non_blocking=True) for t in batch["inputs"]]
            torch.cuda.synchronize()
            log(f"  batch {i}: {len(moved)} images {tuple(moved[0].shape)}, pinned, on {moved[0].device}")
    finally:
        os.chdir(here)
    return f"{LOADER_WORKERS} workers, pin_memory=True (the pipeline leaves it False)"


def phase_stages_amp(repo: Path, amp: str, out: Path, log) -> str:
    set_train(repo, amp=amp, num_workers=LOADER_WORKERS)
    stages = training_stages(repo)
    code = repro_stages(repo, stages, out / f"stages_{amp}.log", log)
    if code != 0:
        raise AssertionError(f"dvc repro exited {code} (stages_{amp}.log)")
    return f"{len(stages)} training stages under {amp}"


def phase_syncbn(repo: Path, out: Path, log) -> str:
    import torch

    n = torch.cuda.device_count()
    if n < 2:
        return "SKIP one GPU: SyncBN not exercised (nor NCCL, nor torchrun's relaunch)"
    set_train(repo, amp="fp32", nproc=2, batch_size=2)
    teacher = [s for s in training_stages(repo) if s.startswith("teacher@")]
    code = repro_stages(repo, teacher, out / "stages_syncbn.log", log)
    text = (out / "stages_syncbn.log").read_text()
    if code != 0:
        raise AssertionError(f"dvc repro exited {code} (stages_syncbn.log)")
    if "SyncBatchNorm" not in text and "SyncBN" not in text:
        log("  note: the log does not name SyncBN; the stage's --dry-run shows the norm")
    return f"teacher on 2 of {n} GPUs (torchrun, NCCL, SyncBN)"


# ---------------------------------------------------------------------------------
# Phase 6: the cost table.


def cost_command() -> list[str]:
    """The cost table of the paper's four pairs, params.yaml's own first (the rows are
    reported as they come: a cut run still gives the first pairs)."""
    from ..models.pairs import PAIRS

    first = yaml.safe_load((REPO / "params.yaml").read_text())["pairs"]
    pairs = list(dict.fromkeys([*first, *PAIRS]))
    return [sys.executable, "-m", "bpkd.bench.cost", "--device", "cuda", "--geometry", "cityscapes",
            "--pairs", *pairs]


def phase_cost(out: Path, log, seconds: float) -> str:
    import threading

    with open(out / "cost.md", "w") as table:
        proc = subprocess.Popen(cost_command(), cwd=REPO, env=tool_env(), stdout=table, stderr=subprocess.PIPE,
                                text=True, bufsize=1)
        cut = threading.Timer(seconds, proc.kill)  # the deadline, even if the bench prints nothing
        cut.start()
        try:
            for line in proc.stderr:
                log("  " + line.rstrip())
            code = proc.wait()
        finally:
            cut.cancel()
    if code != 0:
        raise AssertionError(f"bench.cost exited {code}" + (" (cut at the deadline: the rows above are what it "
                                                           "measured)" if code == -9 else ""))
    return "cost.md"


# ---------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bpkd.devtools.cuda_check", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for the logs and the cost table (e.g. $OUT)")
    ap.add_argument("--deadline-s", type=float, default=DEFAULT_DEADLINE_S,
                    help=f"seconds from the start after which no phase starts (default {DEFAULT_DEADLINE_S})")
    ap.add_argument("--phases", nargs="+", choices=PHASE_GROUPS, default=list(PHASE_GROUPS),
                    help="tensors (1), stages (2-5, in the scratch copy), cost (6); default: all, in that order")
    ap.add_argument("--dry-run", action="store_true",
                    help="no GPU needed: make the scratch copy, print what each phase would run, run nothing")
    args = ap.parse_args(argv)
    start = time.monotonic()
    out = Path(args.out)
    log = Log(out / "cuda_check.log")
    why = None if args.dry_run else no_cuda_reason()
    if why:
        log.file.write(f"cuda_check: refused: {why}\n")
        print(f"cuda_check: refused: {why}", file=sys.stderr)
        return 2

    from ..cli import quiet_library_noise

    quiet_library_noise()  # as every stage: mmseg's OneDL notice and mmcv-lite's MSDA warning
    repo = Path(tempfile.mkdtemp(prefix="bpkd-cuda-check-"))
    if not shutil.which("dvc"):  # pip --target puts the console script beside the packages
        import dvc

        scripts = Path(dvc.__file__).resolve().parents[1] / "bin"
        os.environ["PATH"] = f"{scripts}{os.pathsep}{os.environ.get('PATH', '')}"
    if args.dry_run:
        log("cuda_check --dry-run: nothing runs")
        scratch_copy(repo, log)
        log(f"scratch copy: {repo}")
        log(f"stages fp32: dvc repro (every stage of {PROFILE}), train.amp fp32, num_workers {LOADER_WORKERS}")
        log(f"stages bf16/fp16: dvc repro --single-item --force {' '.join(training_stages(repo))}")
        log(f"cost: {' '.join(cost_command()[1:])}")
        shutil.rmtree(repo, ignore_errors=True)
        return 0

    import torch

    log(f"cuda_check: {device_line()}")
    amp = ["bf16", "fp16"] if torch.cuda.is_bf16_supported() else ["fp16"]
    results: dict[str, str] = {}

    def phase(name: str, fn, *fn_args) -> None:
        left = args.deadline_s - (time.monotonic() - start)
        if left < NEEDS_S[name]:
            results[name] = f"SKIP out of time ({left:.0f} s left, needs ~{NEEDS_S[name]} s)"
            log(f"[{name}] {results[name]}")
            return
        log(f"[{name}] starting at {time.monotonic() - start:.0f} s")
        t = time.monotonic()
        try:
            said = fn(*fn_args)
            results[name] = said if said.startswith("SKIP") else f"PASS {said}"
        except Exception as err:  # noqa: BLE001 - every phase reports, the next one runs
            log(traceback.format_exc())
            results[name] = f"FAIL {type(err).__name__}: {err}"
        log(f"[{name}] {results[name]} ({time.monotonic() - t:.0f} s)")

    if "tensors" in args.phases:
        phase("tensors", phase_tensors, log, amp)
    copied = False
    if "stages" in args.phases:
        try:
            scratch_copy(repo, log)
            copied = True
        except Exception as err:  # noqa: BLE001
            log(traceback.format_exc())
            for name in ("stages fp32", "loader", *(f"stages {a}" for a in amp), "syncbn"):
                results[name] = f"FAIL no scratch copy: {err}"
    if copied:
        phase("stages fp32", phase_stages_fp32, repo, out, log)
        if results["stages fp32"].startswith("PASS"):
            phase("loader", phase_loader, repo, log)
            for a in amp:
                phase(f"stages {a}", phase_stages_amp, repo, a, out, log)
            phase("syncbn", phase_syncbn, repo, out, log)
        else:
            for name in ("loader", *(f"stages {a}" for a in amp), "syncbn"):
                results[name] = "SKIP the fp32 stages failed"
    if "cost" in args.phases:
        phase("cost", lambda: phase_cost(out, log, args.deadline_s - (time.monotonic() - start)))
    shutil.rmtree(repo, ignore_errors=True)

    log(f"\ncuda_check: {time.monotonic() - start:.0f} s; {device_line()}")
    for name, said in results.items():
        log(f"  {name:12s} {said}")
    return 1 if any(s.startswith("FAIL") for s in results.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
