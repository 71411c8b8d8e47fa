"""What measuring the loss terms' balance costs a distillation, side by side.

    python -m bpkd.bench.term_balance [--profile demo] [--repeats 7] [--methods bpkd cwd]

For each method, at a profile's batch and crop: the time of a distillation training
step without the measurement and of a step with it (one extra backward pass per
term and one for the CE, :mod:`bpkd.distill.term_balance`), the two alternated on
the same batch in one process. The measurement runs every
``profiles.<profile>.term_balance.interval`` steps, so its share of the stage's
training time is ``(with / without - 1) / interval``; the table gives it for the
profile's interval. Prints the table, then one JSON line ``{method: share}``.
"""
from __future__ import annotations

import argparse
import json
import statistics

import torch

from .distill import _batch, timed


def measure(method: str, knobs: dict, pair: str, batch: int, size: tuple[int, int], repeats: int) -> dict:
    from mmengine.optim import OptimWrapper, OptimWrapperDict
    from mmengine.registry import OPTIMIZERS, DefaultScope
    from mmengine.visualization import Visualizer

    from ..datasets.synthetic import CLASSES
    from ..distill.distiller import DistillerOptimWrapperConstructor, SegDistiller
    from ..distill.losses import METHODS
    from ..models.build import model_config
    from ..models.pairs import PAIRS

    DefaultScope.get_instance(f"bpkd-bench-balance-{method}", scope_name="mmseg")
    Visualizer.get_instance(f"bpkd-bench-balance-{method}")  # the measurement logs to it (no backend: nowhere)
    torch.manual_seed(0)
    p, k = PAIRS[pair], len(CLASSES)
    student, teacher = model_config(p.student, k, size).to_dict(), model_config(p.teacher, k, size).to_dict()
    model = SegDistiller(student, teacher, None, method, knobs).train()
    sgd = dict(type="SGD", lr=0.01, momentum=0.9, weight_decay=5e-4)
    if METHODS[method].has_discriminator:
        from ..distill.losses.discriminator import optimizer_config

        opt = DistillerOptimWrapperConstructor(dict(student=dict(optimizer=sgd),
                                                    discriminator=dict(optimizer=optimizer_config(model.method.params))))(model)
    else:
        opt = OptimWrapperDict(student=OptimWrapper(OPTIMIZERS.build(
            dict(sgd, params=[q for q in model.parameters() if q.requires_grad]))))
    data = _batch(batch, *size)

    def step(interval: int) -> float:
        model.balance_interval = interval  # iteration 0 (no runner): interval 1 measures, 0 does not
        return timed(lambda: model.train_step(data, opt))

    step(0), step(1)  # warm-up of both paths
    plain, measured = [], []
    for _ in range(repeats):  # alternated, so that drifts of the host hit both alike
        plain.append(step(0))
        measured.append(step(1))
    return dict(plain=statistics.median(plain), measured=statistics.median(measured))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pair", default="hrnet_w48_w18s")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--profile", default="demo", help="the profile whose batch, crop and interval to measure")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--methods", nargs="*", help="default: every registered method")
    args = ap.parse_args(argv)
    from ..cli import quiet_library_noise

    quiet_library_noise()
    import yaml
    from tabulate import tabulate

    from ..distill.losses import METHODS, PARAM_GROUPS
    from ..distill.method_config import active_params
    from ..params import Params

    tree = yaml.safe_load(open(args.params))
    params = Params(dict(tree, profile=args.profile))
    settings, interval = params.train["student"], params.term_balance_interval()
    if settings.crop is None:
        raise SystemExit(f"profile {args.profile!r} has no crop (the dataset's default): nothing to measure at")
    rows, shares = [], {}
    for method in args.methods or list(METHODS):
        group = PARAM_GROUPS[method]
        _, knobs = active_params(method, dict(tree.get(group) or {}), group)
        r = measure(method, knobs, args.pair, settings.batch_size, settings.crop, args.repeats)
        extra = r["measured"] / r["plain"] - 1
        shares[method] = round(extra / interval, 4) if interval else 0.0
        rows.append((method, f"{r['plain'] * 1000:.0f}", f"{r['measured'] * 1000:.0f}", f"{extra:.2f}",
                     f"{100 * shares[method]:.1f} %"))
    print(f"{args.profile}: pair {args.pair}, batch {settings.batch_size}x3x{settings.crop[0]}x{settings.crop[1]}, "
          f"{torch.get_num_threads()} threads; term_balance.interval = {interval}")
    print(tabulate(rows, headers=["method", "step (ms)", "step measuring (ms)", "extra per measurement (steps)",
                                  f"share of training at interval {interval}"], tablefmt="github"))
    print(json.dumps(shares))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
