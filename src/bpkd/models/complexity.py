"""FLOPs and parameters of the paper's architectures, counted with mmengine's
complexity analysis (``mmengine.analysis.get_model_complexity_info``).

Counting convention (chosen to reproduce the seed's tables, see README):
  * FLOPs are mmengine's count, which — like the mmcv 1.x counter behind the
    paper's tables — counts one multiply-accumulate as one FLOP, of the inference
    forward (``_forward``: backbone + decode head; the auxiliary head never runs at
    test time), at the input size given below;
  * parameters are all parameters of the model as trained, auxiliary head included.

    python -m bpkd.models.complexity --dataset cityscapes [--json]
"""
from __future__ import annotations

import argparse
import json
import sys

# The seed's tables count every dataset's FLOPs at one input size: its ADE20K and
# Pascal Context rows repeat the Cityscapes numbers. 512x512 reproduces them (see README).
COUNT_INPUT = (512, 512)


def complexity(arch: str, num_classes: int, input_hw: tuple[int, int] = COUNT_INPUT) -> dict:
    import torch
    from mmengine.analysis import get_model_complexity_info

    from .build import build_model, model_config
    from .pairs import ARCHS

    model = build_model(model_config(arch, num_classes, input_hw))
    model.eval()

    class _Inference(torch.nn.Module):
        """What runs at test time: backbone + decode head (no auxiliary head)."""

        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m._forward(x)

    with torch.no_grad():
        info = get_model_complexity_info(_Inference(model), input_shape=(3, *input_hw), show_table=False,
                                         show_arch=False)
    params = sum(p.numel() for p in model.parameters())
    return {"model": ARCHS[arch].name, "arch": arch, "flops_g": round(info["flops"] / 1e9, 2),
            "params_m": round(params / 1e6, 2)}


def table(dataset: str) -> list[dict]:
    from ..datasets.specs import get
    from .pairs import PAIRS

    spec = get(dataset)
    rows = []
    for pair in PAIRS.values():
        for arch in (pair.teacher, pair.student):
            rows.append(complexity(arch, spec.num_classes))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="cityscapes", help="dataset whose class count sizes the heads")
    parser.add_argument("--json", action="store_true", help="print a JSON list of {model, flops_g, params_m}")
    args = parser.parse_args(argv)
    rows = table(args.dataset)
    if args.json:
        print(json.dumps([{k: r[k] for k in ("model", "flops_g", "params_m")} for r in rows], indent=2))
    else:
        from tabulate import tabulate

        print(tabulate([(r["model"], f"{r['flops_g']:.2f}", f"{r['params_m']:.2f}") for r in rows],
                       headers=["Model", "FLOPs(G)", "Parameters(M)"], tablefmt="github"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
