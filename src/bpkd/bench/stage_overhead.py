"""The fixed cost a training stage pays besides its iterations, measured part by part.

    python -m bpkd.bench.stage_overhead [--pair hrnet_w48_w18s] [--repeats 3]

Each repeat is a fresh interpreter (spawned), as every DVC stage is, and times in order:

- ``interpreter``: from spawn to the child's first line (Python start-up and pickling);
- ``import``: what ``stages/train.py`` does before it reads params: ``bpkd.cli``'s
  start-up (CPU kernel pin, oneMKL VML warm-up as torch loads), then ``torch``,
  ``mmengine``, ``mmseg`` and ``bpkd``'s training modules;
- ``build <arch>``: the model from mmseg's config file (``bpkd.models.build``), weights
  initialised by mmengine's ``init_weights``, for the pair's teacher and student;
- ``save <arch>``: one mmengine checkpoint of that model with an SGD momentum buffer
  per parameter (``mmengine.runner.checkpoint.save_checkpoint``, what the Runner's
  ``CheckpointHook`` writes) to a temporary directory;
- ``load <arch>``: the same file back with ``torch.load(weights_only=True)``.

Prints a table (median and range over repeats, seconds) and, as its last line, one JSON
object ``{"<part>": median_s, ...}``. Time it alone: on two cores any other job
inflates every part.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import time


def _child(start: float, pair: str) -> dict:
    out = {"interpreter": time.time() - start}
    t = time.perf_counter()
    import tempfile

    from .. import cli
    from ..vml_warmup import warm_up_vml_when_torch_loads

    cli.pin_cpu_kernels()
    warm_up_vml_when_torch_loads()
    cli.quiet_library_noise()
    import torch
    from mmengine.runner.checkpoint import save_checkpoint

    from ..models.build import build_model, model_config
    from ..models.pairs import PAIRS
    from ..training import config as _training_config  # noqa: F401  (what train.py imports)
    from ..training import run as _training_run  # noqa: F401

    out["import"] = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        for arch in (PAIRS[pair].teacher, PAIRS[pair].student):
            t = time.perf_counter()
            model = build_model(model_config(arch, 10, (64, 128)))
            model.init_weights()
            out[f"build {arch}"] = time.perf_counter() - t
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            for p in model.parameters():
                optimizer.state[p]["momentum_buffer"] = torch.zeros_like(p)
            path = f"{tmp}/{arch}.pth"
            t = time.perf_counter()
            save_checkpoint({"meta": {"iter": 1}, "state_dict": model.state_dict(),
                             "optimizer": optimizer.state_dict()}, path)
            out[f"save {arch}"] = time.perf_counter() - t
            t = time.perf_counter()
            torch.load(path, map_location="cpu", weights_only=True)
            out[f"load {arch}"] = time.perf_counter() - t
    return out


def measure(pair: str, repeats: int) -> dict[str, list[float]]:
    ctx = mp.get_context("spawn")
    parts: dict[str, list[float]] = {}
    for _ in range(repeats):
        # A pool per repeat, as the other benches' fresh processes, so that a failing child
        # raises here; created after `start`, so its worker's start-up is what is timed.
        start = time.time()
        with ctx.Pool(1) as pool:
            result = pool.apply(_child, (start, pair))
        for name, seconds in result.items():
            parts.setdefault(name, []).append(seconds)
    return parts


def main(argv=None) -> int:
    from ..models.pairs import PAIRS

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--pair", default="hrnet_w48_w18s", choices=sorted(PAIRS))
    ap.add_argument("--repeats", type=int, default=3, help="fresh processes, one after another")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    parts = measure(args.pair, args.repeats)
    print(f"{'part':<24} {'median s':>9} {'min s':>7} {'max s':>7}")
    for name, times in parts.items():
        print(f"{name:<24} {statistics.median(times):9.2f} {min(times):7.2f} {max(times):7.2f}")
    print(json.dumps({name: round(statistics.median(times), 3) for name, times in parts.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
