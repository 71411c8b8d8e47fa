"""FLOPs and parameters of the paper's architectures, counted with mmengine's
jit analyzer (``mmengine.analysis``).

What is counted (measured to reproduce the paper's columns, see README "Models and
the complexity convention"):
  * the forward of mmseg's whole-image inference, ``EncoderDecoder.encode_decode``:
    backbone + decode head + the bilinear resize of the logits to the input size
    (the auxiliary head never runs at test time), on one 512x512 image for every
    dataset (the seed repeats its Cityscapes numbers in its ADE20K and Pascal
    Context tables, which only one fixed count input explains);
  * FLOPs in one of two conventions (``--convention``), one multiply-accumulate
    counted as one FLOP in both:
      - ``mmengine`` (default): ``mmengine.analysis.FlopAnalyzer``'s per-operator
        handles as shipped -- conv MACs (no bias), eval BN 2 per element, bilinear
        upsampling 4 per output element, adaptive average pooling 1 per input
        element, matmul/linear MACs; ReLU, max pooling and additions count zero.
        This reproduces all eight FLOPs of the paper's README to their two decimals (with the paper's
        heads, below);
      - ``mmcv1``: mmcv 1.x's module-hook convention (``bpkd.models.mmcv1_flops``);
        kept because the issue assumed the seed used it -- measured, it does not
        reproduce the seed (README);
  * parameters: all parameters of the model as trained, auxiliary head included.

Heads (``--heads``): the paper's README's numbers are those of the ADE20K models (150-class
heads) in all three of its tables, so its FLOPs(G)/Parameters(M) columns are a
property of the architecture, not of the dataset. ``seed`` (default) counts with
150 classes whatever ``--dataset`` says and reproduces all sixteen Cityscapes-column
numbers; it is also what the results tables show, so they mean what the paper's
mean. ``dataset`` gives the heads the dataset's own class count: what a model
trained on it really costs (``complexity@<dataset>`` records it beside the paper's).

    python -m bpkd.models.complexity --dataset cityscapes [--heads seed|dataset] [--convention mmcv1] [--json]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys

# One count input for every dataset (see above); 512x1024 gives about twice these numbers.
COUNT_INPUT = (512, 512)
CONVENTIONS = ("mmengine", "mmcv1")
HEADS = ("seed", "dataset")
# The seed counted every architecture with ADE20K's heads: its parameter counts are
# those of 150-class models exactly (README), in all three of its tables.
SEED_NUM_CLASSES = 150


def _inference_module(model, input_hw: tuple[int, int]):
    """``model.encode_decode`` as a traceable module: what whole-image inference runs."""
    import torch

    metas = [dict(img_shape=tuple(input_hw), pad_shape=tuple(input_hw), ori_shape=tuple(input_hw))]

    class Inference(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m.encode_decode(x, metas)

    return Inference(model)


def count_flops(module, inputs: tuple, convention: str = "mmengine") -> int:
    """FLOPs of ``module(*inputs)`` in ``convention`` (see the module docstring)."""
    if convention == "mmengine":
        from mmengine.analysis import FlopAnalyzer

        analyzer = FlopAnalyzer(module, inputs)
        # Ops without a handle (add, relu, max_pool, dropout) are zero by this convention.
        analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        return int(analyzer.total())
    if convention == "mmcv1":
        from .mmcv1_flops import mmcv1_flop_count

        return sum(mmcv1_flop_count(module, inputs).values())
    raise ValueError(f"unknown FLOPs convention {convention!r}; expected one of {CONVENTIONS}")


def complexity(arch: str, num_classes: int, input_hw: tuple[int, int] = COUNT_INPUT,
               convention: str = "mmengine") -> dict:
    import torch

    from .build import build_model, model_config
    from .pairs import ARCHS

    if convention not in CONVENTIONS:
        raise ValueError(f"unknown FLOPs convention {convention!r}; expected one of {CONVENTIONS}")
    model = build_model(model_config(arch, num_classes, input_hw))
    model.eval()
    with torch.no_grad():
        flops = count_flops(_inference_module(model, input_hw), (torch.randn(1, 3, *input_hw),), convention)
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"model": ARCHS[arch].name, "arch": arch, "flops_g": round(flops / 1e9, 2),
            "params_m": round(params / 1e6, 2), "num_classes": num_classes, "convention": convention,
            "input": "x".join(map(str, input_hw))}


def head_classes(dataset: str, heads: str) -> int:
    """The class count of the counted heads: the paper's 150, or ``dataset``'s own."""
    from ..datasets.specs import get

    if heads not in HEADS:
        raise ValueError(f"unknown heads {heads!r}; expected one of {HEADS}")
    return SEED_NUM_CLASSES if heads == "seed" else get(dataset).num_classes


def table(dataset: str, *, heads: str = "seed", convention: str = "mmengine",
          archs: list[str] | None = None, input_hw: tuple[int, int] = COUNT_INPUT) -> list[dict]:
    from .pairs import PAIRS

    num_classes = head_classes(dataset, heads)
    if archs is None:
        archs = list(dict.fromkeys(a for pair in PAIRS.values() for a in (pair.teacher, pair.student)))
    return [complexity(a, num_classes, input_hw, convention) for a in archs]


def main(argv=None) -> int:
    from .pairs import ARCHS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="cityscapes", help="dataset whose class count sizes the heads with --heads dataset")
    parser.add_argument("--heads", choices=HEADS, default="seed",
                        help=f"seed: {SEED_NUM_CLASSES}-class (ADE20K) heads, as the paper's three tables count "
                             "(default); dataset: the dataset's own class count")
    parser.add_argument("--convention", choices=CONVENTIONS, default="mmengine", help="FLOPs convention")
    parser.add_argument("--arch", action="append", choices=sorted(ARCHS),
                        help="count only this architecture (repeatable; default: all pairs' teachers and students)")
    parser.add_argument("--input-size", nargs=2, type=int, default=list(COUNT_INPUT), metavar=("H", "W"),
                        help="count input (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print a JSON list of rows")
    args = parser.parse_args(argv)
    from ..cli import quiet_library_noise

    quiet_library_noise()  # the OneDL notice and mmcv-lite's MSDA warning, as in every stage
    # mmseg's dataset package prints "Could not import OneDL" to stdout on import:
    # keep stdout for the table (a parseable JSON document with --json).
    with contextlib.redirect_stdout(sys.stderr):
        rows = table(args.dataset, heads=args.heads, convention=args.convention, archs=args.arch,
                     input_hw=tuple(args.input_size))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        from tabulate import tabulate

        print(tabulate([(r["model"], f"{r['flops_g']:.2f}", f"{r['params_m']:.2f}") for r in rows],
                       headers=["Model", "FLOPs(G)", "Parameters(M)"], tablefmt="github"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
