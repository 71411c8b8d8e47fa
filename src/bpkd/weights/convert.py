"""Map a released checkpoint onto the mmseg 1.x model it is meant for.

    python -m bpkd.weights.convert SRC --arch hrnet_w18s --num-classes 19 --out DST

The BPKD students were trained with mmseg 0.26 inside mmrazor, so their files are
not plain mmseg state dicts: the weights may sit under ``state_dict`` or ``model``
(or both), the student's keys carry the wrapper's attribute path
(``architecture.model.``, ``architecture.``, ``student.``, ``model.``, or
``module.`` from DataParallel), and the file may also hold the teacher
(``distiller.teacher.…``, ``teacher.…``) and the distiller's own modules
(``distiller.…``). This module unwraps the nesting, drops the teacher and
distiller, strips wrapper prefixes until a key names a parameter of the target
model, and checks the result: every parameter and running statistic must be
there with the right shape, or loading fails naming the file and example keys. A
missing ``num_batches_tracked`` counter is tolerated (older files lack it and it
does not change inference) and taken from the model.

mmengine's ``load_checkpoint(revise_keys=...)`` can strip a prefix too, but it
warns instead of failing on missing weights, which is how a half-loaded student
silently evaluates at chance; hence this explicit mapping. Files are read through
``bpkd.weights.load_checkpoint`` (``weights_only=True``).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import CheckpointError, load_checkpoint, save_checkpoint

# Wrapper attribute paths in front of the student's own keys, longest first.
WRAPPER_PREFIXES = ("architecture.model.", "architecture.", "student.", "model.", "module.")
# Nesting keys that hold a state dict rather than being one.
NESTING_KEYS = ("state_dict", "model")
# Entries a model may lack in an older file without changing what it computes.
TOLERATED_MISSING = ("num_batches_tracked",)


@dataclass
class Conversion:
    """The converted ``state_dict`` and what was done to get it."""

    state_dict: dict[str, torch.Tensor]
    renamed: int = 0  # keys whose wrapper prefix was stripped
    dropped: list[str] = field(default_factory=list)  # teacher / distiller keys
    unexpected: list[str] = field(default_factory=list)  # keys that name nothing in the model
    filled: list[str] = field(default_factory=list)  # tolerated missing entries taken from the model

    def summary(self) -> str:
        parts = [f"{len(self.state_dict)} tensors", f"{self.renamed} renamed"]
        if self.dropped:
            parts.append(f"{len(self.dropped)} teacher/distiller keys dropped")
        if self.filled:
            parts.append(f"{len(self.filled)} missing counters filled (e.g. {self.filled[0]})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected keys ignored (e.g. {self.unexpected[:3]})")
        return ", ".join(parts)


def _is_tensor_dict(d: dict) -> bool:
    return bool(d) and any(isinstance(v, torch.Tensor) for v in d.values())


def unwrap(ckpt: dict, source: str) -> dict[str, torch.Tensor]:
    """The innermost mapping of tensors under ``state_dict``/``model`` nesting."""
    node = ckpt
    while not _is_tensor_dict(node):
        inner = next((node[k] for k in NESTING_KEYS if isinstance(node.get(k), dict)), None)
        if inner is None:
            raise CheckpointError(f"{source}: no weights found; top-level keys are {sorted(node)[:10]}")
        node = inner
    return {k: v for k, v in node.items() if isinstance(v, torch.Tensor)}


def is_teacher_key(key: str) -> bool:
    parts = key.split(".")
    return parts[0] == "distiller" or "teacher" in parts


def _target_key(key: str, target: dict) -> tuple[str | None, bool]:
    """Strip wrapper prefixes until ``key`` names an entry of ``target``."""
    k, stripped = key, False
    while k not in target:
        prefix = next((p for p in WRAPPER_PREFIXES if k.startswith(p)), None)
        if prefix is None:
            return None, stripped
        k, stripped = k[len(prefix):], True
    return k, stripped


def convert_state_dict(ckpt: dict, target: dict[str, torch.Tensor], source: str) -> Conversion:
    """Map the checkpoint dict ``ckpt`` onto the keys and shapes of ``target``
    (a model's ``state_dict()``). ``source`` names the file in errors."""
    weights = unwrap(ckpt, source)
    out: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    conv = Conversion(state_dict=out)
    mismatched = []
    for key, value in weights.items():
        if is_teacher_key(key):
            conv.dropped.append(key)
            continue
        new, stripped = _target_key(key, target)
        if new is None:
            conv.unexpected.append(key)
            continue
        if new in out:
            raise CheckpointError(f"{source}: both {origin[new]!r} and {key!r} map onto {new!r}")
        if value.shape != target[new].shape:
            mismatched.append(f"{key}: {tuple(value.shape)} vs model {tuple(target[new].shape)}")
            continue
        out[new], origin[new] = value, key
        conv.renamed += stripped
    if mismatched:
        raise CheckpointError(f"{source}: {len(mismatched)} tensors have the wrong shape for this model "
                              f"(wrong architecture or class count?), e.g. {mismatched[:3]}")
    missing = [k for k in target if k not in out]
    real = [k for k in missing if not k.endswith(TOLERATED_MISSING)]
    if real:
        raise CheckpointError(
            f"{source}: {len(real)} of the model's {len(target)} weights are missing from the checkpoint, "
            f"e.g. {real[:3]}; the checkpoint's keys look like {list(weights)[:3]} "
            f"({len(conv.dropped)} teacher/distiller keys dropped, {len(conv.unexpected)} unmatched)")
    for k in missing:
        out[k] = target[k].detach().clone()
        conv.filled.append(k)
    return conv


def convert_checkpoint(src: str | Path, model: torch.nn.Module, dst: str | Path | None = None) -> Conversion:
    """Read ``src`` safely, map it onto ``model`` and, with ``dst``, save it as a
    plain ``{"meta", "state_dict"}`` file that ``bpkd.weights.load_into`` accepts."""
    conv = convert_state_dict(load_checkpoint(src), model.state_dict(), str(src))
    if dst is not None:
        save_checkpoint(conv.state_dict, dst, meta={"converted_from": Path(src).name, "conversion": conv.summary()})
    return conv


def build_arch(arch: str, num_classes: int) -> torch.nn.Module:
    """An untrained mmseg model of ``arch`` (bpkd.models.pairs) to convert onto."""
    from ..models.build import build_model, model_config

    return build_model(model_config(arch, num_classes, crop=(64, 64)))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bpkd.weights.convert",
                                 description="Convert a released (mmseg 0.x / mmrazor) checkpoint to a plain mmseg 1.x "
                                             "state dict for one architecture; fails if weights are missing.")
    ap.add_argument("src", help="checkpoint file")
    ap.add_argument("--arch", required=True, help="architecture key, e.g. pspnet_r18 (see bpkd.models.pairs)")
    ap.add_argument("--num-classes", type=int, required=True)
    ap.add_argument("--out", required=True, help="converted checkpoint")
    args = ap.parse_args(argv)
    conv = convert_checkpoint(args.src, build_arch(args.arch, args.num_classes), args.out)
    print(f"{args.out}: {conv.summary()}")


if __name__ == "__main__":
    from .. import cli

    cli.run(main)
