"""The speed knobs (``train.amp``, ``train.memory_format``, ``train.compile``) measured
side by side on the pipeline's own steps.

    python -m bpkd.bench.speed [--profile demo] [--repeats 10] [--steps teacher student ...]
                               [--settings "fp32 NCHW eager" "bf16 NHWC eager" ... | all]

A setting is ``"<precision> <layout> <mode>"``: precision ``fp32`` or ``bf16``
(``fp16`` on CUDA only), layout ``NCHW`` or ``NHWC``, mode ``eager`` or
``compiled``. The baseline is ``"fp32 NCHW eager"``. Default: the four eager
settings; ``--settings all`` adds ``"fp32 NCHW compiled"`` and ``"bf16 NHWC
compiled"`` (torch.compile costs minutes per model on a 2-core CPU). The knobs are
applied as the pipeline applies them:

- bf16: the run's optim wrapper, ``optim_wrapper_config(..., amp, cuda, key)``
  built with mmengine's ``OPTIM_WRAPPERS`` (``CPUBF16AmpOptimWrapper`` on CPU,
  mmengine's ``AmpOptimWrapper`` on CUDA), so ``train_step`` runs its forwards under
  the wrapper's ``optim_context``; the eval step under mmengine's
  ``autocast(dtype=torch.bfloat16)``. Measured even where the pipeline would fall
  back to fp32 (a CPU without native bf16; the header says so).
- NHWC: ``model.to(memory_format=torch.channels_last)`` after building, as
  ``ChannelsLastHook`` does; inputs stay NCHW.
- compiled: ``model.train_step = torch.compile(model.train_step)``, as mmengine's
  ``Runner._maybe_compile`` does with ``compile=True``; for the eval step the
  model's forward is compiled.

Steps (pair ``--pair``, 10 classes, batch size and crop of the ``--profile``'s
training settings, 4 x 64x128 on the demo):

- ``teacher`` / ``student``: one ``train_step`` of the teacher / student segmentor
  (SGD, as ``bpkd.bench.distill``);
- ``eval``: one whole-image ``predict`` of the student, eval mode and no grad, on one
  image at the profile's synthetic scene size (256x512 on the demo). The pipeline
  always evaluates in fp32; the other settings show what they would do;
- ``skds``, ``ifvd``, ``cirkd``, ``cwd``, ``bpkd``: one ``SegDistiller.train_step``
  (teacher forward included), built as ``bpkd.bench.distill`` builds it, with
  ``params.yaml``'s method knobs.

Each (setting, step) runs in its own fresh spawned process, with the parent's torch
thread count and ``ATEN_CPU_CAPABILITY`` (``bpkd.cli.pin_cpu_kernels``). A step's
processes are alive together and take turns, one call at a time (the others wait on a
pipe): ``--warmup`` calls each (the first one timed apart), then ``--repeats`` rounds
in which every setting runs one timed call, in an order rotated each round. So a
change of the host's speed within the run falls on every setting alike (a shared
2-core VM's step time was seen to jump by 70 % between two calls of one process), and
round ``i`` pairs the settings' times. Then the next step.

Prints a header with the host (CPU, native bf16, flags, torch, threads), a table
(rows: steps; per setting: median ms with min-max over the repeats, and ratio of the
median to the baseline's, with the quartiles of the per-round ratios beside it), the
compile time of compiled settings (first call minus median step), and as its last
line one JSON object::

    {"setting": "bf16 NHWC eager", "ratios": {"teacher": 0.61, "student": 0.64, ...}}

the ratio, per measured step, of the median step time under the profile's own
setting (``profiles.<profile>.train``: amp, memory_format, compile; the demo's
default with the default ``--profile``) to the median under ``"fp32 NCHW eager"``,
both measured in this run (added to the settings if not listed). The profile's setting
is the one its stages run on this host: ``bf16`` on a CPU without native bfloat16
instructions is ``fp32`` there (``bpkd.training.amp.precision_on_this_host``), and so
it is here; the header says so.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

BASELINE = "fp32 NCHW eager"
SETTINGS = ("fp32 NCHW eager", "fp32 NHWC eager", "bf16 NCHW eager", "bf16 NHWC eager",
            "fp32 NCHW compiled", "bf16 NHWC compiled")
DEFAULT_SETTINGS = SETTINGS[:4]
METHOD_STEPS = ("skds", "ifvd", "cirkd", "cwd", "bpkd")
STEPS = ("teacher", "student", "eval", *METHOD_STEPS)
HOST_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
PRECISIONS = ("fp32", "bf16", "fp16")
LAYOUTS = {"NCHW": "contiguous", "NHWC": "channels_last"}
MODES = {"eager": False, "compiled": True}


def parse_setting(name: str) -> dict:
    """``"bf16 NHWC eager"`` -> ``{"amp": "bf16", "memory_format": "channels_last", "compile": False}``."""
    parts = name.split()
    if len(parts) != 3 or parts[0] not in PRECISIONS or parts[1] not in LAYOUTS or parts[2] not in MODES:
        raise ValueError(f"setting {name!r}: expected '<{'|'.join(PRECISIONS)}> <{'|'.join(LAYOUTS)}> "
                         f"<{'|'.join(MODES)}>', e.g. {BASELINE!r}")
    return dict(amp=parts[0], memory_format=LAYOUTS[parts[1]], compile=MODES[parts[2]])


def setting_name(amp: str, memory_format: str, compile: bool) -> str:
    layout = {v: k for k, v in LAYOUTS.items()}[memory_format]
    return f"{amp} {layout} {'compiled' if compile else 'eager'}"


# ---------------------------------------------------------------------------------
# Child process: one (setting, step).


def _eval_input(h: int, w: int):
    import numpy as np
    import torch
    from mmseg.structures import SegDataSample

    from ..datasets.synthetic import render_scene

    img, _ = render_scene(np.random.default_rng([0, 3, 0]), h, w)
    sample = SegDataSample()
    sample.set_metainfo(dict(img_shape=(h, w), pad_shape=(h, w), ori_shape=(h, w)))
    return dict(inputs=[torch.from_numpy(img).permute(2, 0, 1).contiguous()], data_samples=[sample])


def _prepare(job: dict):
    """In the worker process: build one step under one setting; return the call to time."""
    from ..cli import quiet_library_noise

    quiet_library_noise()
    import torch
    from mmengine.optim import OptimWrapperDict
    from mmengine.registry import OPTIM_WRAPPERS, OPTIMIZERS, DefaultScope
    from mmengine.runner.amp import autocast

    from ..datasets.synthetic import CLASSES
    from ..distill.distiller import DistillerOptimWrapperConstructor, SegDistiller
    from ..distill.losses import METHODS
    from ..models.build import build_model, model_config
    from ..models.pairs import PAIRS
    from ..training.amp import optim_wrapper_config
    from .distill import _batch

    torch.set_num_threads(job["threads"])
    step, knobs = job["step"], parse_setting(job["setting"])
    DefaultScope.get_instance(f"bpkd-speed-{step}-{job['setting']}", scope_name="mmseg")
    torch.manual_seed(0)
    # bench.cost names the device and the class count of a dataset's geometry; this
    # bench takes the GPU when there is one and the synthetic dataset's classes.
    device = job.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device == "cuda"
    pair, crop, k = PAIRS[job["pair"]], tuple(job["crop"]), job.get("num_classes") or len(CLASSES)
    student_cfg = model_config(pair.student, k, crop).to_dict()
    teacher_cfg = model_config(pair.teacher, k, crop).to_dict()
    sgd = dict(type="SGD", lr=0.01, momentum=0.9, weight_decay=5e-4)  # as bench.distill
    # The student's wrapper of a run with this precision (fp32: the plain OptimWrapper).
    wrapper_cfg = optim_wrapper_config(sgd, knobs["amp"], cuda, job["amp_key"])

    def build_wrapper(params):
        cfg = dict(wrapper_cfg)
        optimizer = OPTIMIZERS.build(dict(cfg.pop("optimizer"), params=list(params)))
        return OPTIM_WRAPPERS.build(dict(cfg, optimizer=optimizer))

    def finish(model):
        """The memory format, as ChannelsLastHook (after build and optimiser; Module.to
        keeps the Parameter objects the optimiser holds)."""
        if knobs["memory_format"] == "channels_last":
            model.to(memory_format=torch.channels_last)

    if step == "eval":
        # The ConfigDict itself (not .to_dict()): mmseg reads test_cfg.mode as an attribute.
        model = build_model(model_config(pair.student, k, crop)).to(device).eval()
        finish(model)
        data = model.data_preprocessor(_eval_input(*job["scene"]), False)
        inputs, samples = data["inputs"], data["data_samples"]
        if knobs["compile"]:
            model.forward = torch.compile(model.forward)

        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(knobs["amp"])

        def fn():
            with torch.no_grad(), autocast(device_type=device, dtype=dtype, enabled=dtype is not None):
                model(inputs, samples, mode="predict")
    else:
        data = _batch(job["batch"], *crop)
        if step in ("teacher", "student"):
            model = build_model(teacher_cfg if step == "teacher" else student_cfg).to(device).train()
            opt = build_wrapper(model.parameters())
        else:
            model = SegDistiller(student_cfg, teacher_cfg, None, step, job["method_params"]).to(device).train()
            if METHODS[step].has_discriminator:
                from ..distill.losses.discriminator import optimizer_config

                # The student keeps the run's (mixed-precision) wrapper, D an fp32 one (training.run).
                opt = DistillerOptimWrapperConstructor(dict(
                    student=wrapper_cfg,
                    discriminator=dict(type="OptimWrapper", optimizer=optimizer_config(model.method.params))))(model)
            else:
                opt = OptimWrapperDict(student=build_wrapper(p for p in model.parameters() if p.requires_grad))
        finish(model)
        if knobs["compile"]:
            model.train_step = torch.compile(model.train_step)  # mmengine Runner._maybe_compile

        def fn():
            model.train_step(data, opt)

    return fn


def _serve(conn, job: dict) -> None:
    """A worker: one fresh process per (setting, step). It builds the step, says it is
    ready, then times one call per request until told to stop; an exception is sent back
    as its traceback, so the parent raises instead of waiting."""
    try:
        from .distill import timed

        fn = _prepare(job)
        conn.send(("ready", None))
        while conn.recv() is not None:
            conn.send(("time", timed(fn)))
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


class _Worker:
    """The parent's end of one worker process (:func:`_serve`)."""

    def __init__(self, ctx, job: dict) -> None:
        self.label = f"{job['step']} under {job['setting']!r}"
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, job), daemon=True)
        self.proc.start()
        child.close()  # so that recv() raises EOFError if the worker dies
        try:
            self._expect("ready")
        except BaseException:
            self.close()
            raise

    def _expect(self, tag: str):
        try:
            got, value = self.conn.recv()
        except EOFError:
            self.proc.join(5)
            raise RuntimeError(f"{self.label}: the worker process died (exit code {self.proc.exitcode})") from None
        if got == "error":
            raise RuntimeError(f"{self.label} failed in its worker process:\n{value}")
        assert got == tag, (got, tag)
        return value

    def call(self) -> float:
        """Seconds of one call of the step, timed in the worker."""
        self.conn.send("call")
        return self._expect("time")

    def close(self) -> None:
        try:
            self.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self.proc.join(30)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


def measure_interleaved(ctx, jobs: dict[str, dict], warmup: int, repeats: int) -> dict[str, dict]:
    """Time one step under several settings, each in its own fresh process, with the
    calls interleaved: round ``i`` calls every setting once, in an order rotated by ``i``.
    A change of the host's speed (another tenant, a clock change) then falls on every
    setting alike instead of on whichever ran during it, and the rounds pair the
    settings' times. Returns per setting ``{"warmup": [...], "times": [...]}``."""
    workers: dict[str, _Worker] = {}
    try:
        for setting, job in jobs.items():  # built one after the other: no build competes with another
            workers[setting] = _Worker(ctx, job)
        out = {setting: dict(warmup=[], times=[]) for setting in jobs}
        names = list(jobs)
        for _ in range(warmup):
            for setting in names:
                out[setting]["warmup"].append(workers[setting].call())
        for i in range(repeats):
            for setting in names[i % len(names):] + names[:i % len(names)]:
                out[setting]["times"].append(workers[setting].call())
        return out
    finally:
        for worker in workers.values():
            worker.close()


# ---------------------------------------------------------------------------------
# Parent.


def _cpuinfo_field(name: str) -> str | None:
    from ..training.cpu_features import CPUINFO_ENV

    try:
        text = Path(os.environ.get(CPUINFO_ENV) or "/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def host_line(threads: int) -> str:
    import torch

    from ..training.cpu_features import cpu_flags, native_bf16

    flags = cpu_flags()
    native = native_bf16()
    cpu = _cpuinfo_field("model name") or platform.processor() or platform.machine()
    parts = [f"host: {cpu}",
             f"native bf16: {'yes (' + ', '.join(native) + ')' if native else 'no'}",
             f"flags: {' '.join(f for f in HOST_FLAGS if f in flags) or 'none of ' + ' '.join(HOST_FLAGS)}",
             f"torch {torch.__version__}", f"threads: {threads}",
             f"ATEN_CPU_CAPABILITY={os.environ.get('ATEN_CPU_CAPABILITY', 'unset')}"]
    if torch.cuda.is_available():
        parts.append(f"cuda: {torch.cuda.get_device_name()}")
    return "; ".join(parts)


def _stats(times: list[float]) -> dict:
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return dict(median=statistics.median(times), min=min(times), max=max(times), q1=q[0], q3=q[2])


def _settings(args, default: str) -> list[str]:
    names = list(SETTINGS) if args.settings == ["all"] else list(dict.fromkeys(args.settings))
    for name in names:
        try:
            parse_setting(name)
        except ValueError as e:
            raise SystemExit(f"--settings: {e}") from None
    for needed in (BASELINE, default):  # the JSON line's ratio needs both
        if needed not in names:
            print(f"note: adding {needed!r} to the settings (the JSON line's ratio needs it)", file=sys.stderr)
            names.append(needed)
    # Table columns: the baseline first, then the listed settings in their usual order.
    order = {name: i for i, name in enumerate(SETTINGS)}
    return sorted(names, key=lambda n: (n != BASELINE, order.get(n, len(order))))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pair", default="hrnet_w48_w18s")
    ap.add_argument("--params", default="params.yaml", help="profiles (sizes, the default setting), method knobs")
    ap.add_argument("--profile", default="demo",
                    help="params.yaml profile: batch size, crop, scene size and the setting of the JSON line")
    ap.add_argument("--repeats", type=int, default=10, help="timed calls per (setting, step), after warm-up")
    ap.add_argument("--warmup", type=int, default=2, help="untimed calls first (the first one is the compile)")
    ap.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS), metavar="STEP",
                    help=f"default: all of {' '.join(STEPS)}")
    ap.add_argument("--settings", nargs="+", default=list(DEFAULT_SETTINGS), metavar="SETTING",
                    help=f"'<precision> <NCHW|NHWC> <eager|compiled>' or 'all' ({', '.join(SETTINGS)}); "
                         f"default: the four eager ones")
    args = ap.parse_args(argv)
    if args.repeats < 1 or args.warmup < 1:
        ap.error("--repeats and --warmup must be >= 1")

    from ..cli import pin_cpu_kernels, quiet_library_noise

    # Before torch is imported here; the spawned children inherit os.environ.
    pin_cpu_kernels(args.params)
    quiet_library_noise()

    import torch
    import yaml
    from tabulate import tabulate

    from ..distill.losses import METHODS, PARAM_GROUPS
    from ..distill.method_config import active_params
    from ..params import Params
    from ..training.amp import precision_on_this_host

    tree = yaml.safe_load(open(args.params))
    params = Params(dict(tree, profile=args.profile))
    train, scene = params.train["student"], params.synthetic()
    if train.crop is None:
        raise SystemExit(f"profile {args.profile!r} has no crop (the dataset's default): pick another --profile")
    cuda = torch.cuda.is_available()
    threads = torch.get_num_threads()
    # The setting the profile's stages run here: on a CPU without native bf16 the pipeline
    # trains bf16 profiles in fp32 (training.amp), so that is what the JSON line reports.
    amp_key = f"profiles.{args.profile}.train.amp"
    amp_here, fallback = precision_on_this_host(train.amp, cuda, amp_key)
    default = setting_name(amp_here, train.memory_format, train.compile)
    settings = _settings(args, default)
    steps = [s for s in STEPS if s in args.steps]
    if not cuda and any(parse_setting(s)["amp"] == "fp16" for s in settings):
        raise SystemExit("--settings: fp16 needs a CUDA GPU (on CPU mmengine autocasts to bfloat16 only)")

    print(host_line(threads), flush=True)
    print(f"profile {args.profile}: pair {args.pair}, train batch {train.batch_size}x3x{train.crop[0]}x{train.crop[1]}, "
          f"eval 1x3x{scene.height}x{scene.width}; {args.warmup} warm-up + {args.repeats} timed calls each, "
          f"{'cuda' if cuda else 'cpu'}; the profile's setting here: {default!r}", flush=True)
    if fallback:
        print(f"note: {fallback}; the JSON line is that fp32 setting's", flush=True)
    _, why = precision_on_this_host("bf16", cuda, amp_key)
    if why and any(parse_setting(s)["amp"] == "bf16" for s in settings):
        print(f"note: bf16 measured anyway; in the pipeline {why}", flush=True)

    base_job = dict(pair=args.pair, crop=train.crop, batch=train.batch_size, scene=(scene.height, scene.width),
                    repeats=args.repeats, warmup=args.warmup, threads=threads,
                    amp_key=amp_key)
    method_params = {}
    for step in steps:
        if step in METHOD_STEPS:
            if step not in METHODS:
                raise SystemExit(f"step {step!r} is not a registered method ({list(METHODS)})")
            group = PARAM_GROUPS[step]
            method_params[step] = active_params(step, dict(tree.get(group) or {}), group)[1]  # the preset that trains

    results: dict[tuple[str, str], dict] = {}
    ctx = mp.get_context("spawn")
    # Step outer, settings inner and interleaved (measure_interleaved): the host's drift
    # over a run's minutes, and over one step's seconds, stays out of a ratio.
    for step in steps:
        print(f"measuring {step} under {', '.join(repr(s) for s in settings)}, interleaved ...",
              file=sys.stderr, flush=True)
        t = time.perf_counter()
        jobs = {setting: dict(base_job, step=step, setting=setting, method_params=method_params.get(step))
                for setting in settings}
        measured = measure_interleaved(ctx, jobs, args.warmup, args.repeats)
        base_times = measured[BASELINE]["times"]
        for setting, r in measured.items():
            # Round i's time over the baseline's in the same round: the ratio's spread.
            paired = [a / b for a, b in zip(r["times"], base_times)]
            results[setting, step] = dict(_stats(r["times"]), warmup=r["warmup"], paired=_stats(paired))
        print(f"  {step}: " + ", ".join(f"{s} {results[s, step]['median'] * 1000:.0f} ms" for s in settings)
              + f" ({time.perf_counter() - t:.0f} s with process starts)", file=sys.stderr, flush=True)

    headers = ["step"]
    for setting in settings:
        headers += [f"{setting} ms (min-max)", f"{setting} ratio"]
    rows = []
    for step in steps:
        base = results[BASELINE, step]["median"]
        row = [step]
        for setting in settings:
            s = results[setting, step]
            paired = s["paired"]
            row += [f"{s['median'] * 1000:.0f} ({s['min'] * 1000:.0f}-{s['max'] * 1000:.0f})",
                    f"{s['median'] / base:.3f}" + ("" if setting == BASELINE else
                                                   f" ({paired['q1']:.2f}-{paired['q3']:.2f})")]
        rows.append(row)
    print()
    print(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))

    compiled = [s for s in settings if parse_setting(s)["compile"]]
    if compiled:
        print("\ncompile time (first call minus median step):")
        rows = []
        for setting in compiled:
            for step in steps:
                s = results[setting, step]
                rows.append([setting, step, f"{s['warmup'][0]:.1f}", f"{s['median'] * 1000:.0f}",
                             f"{s['warmup'][0] - s['median']:.1f}",
                             " ".join(f"{w:.1f}" for w in s["warmup"][1:]) or "-"])
        print(tabulate(rows, headers=["setting", "step", "first call (s)", "median step (ms)", "compile (s)",
                                      "later warm-up calls (s)"], tablefmt="github", disable_numparse=True))

    ratios = {step: round(results[default, step]["median"] / results[BASELINE, step]["median"], 3)
              for step in steps}
    print(json.dumps({"setting": default, "ratios": ratios}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
