"""The balance of a distillation's loss terms: each term's gradient norm on the
student's parameters, relative to the decode head's cross-entropy's.

A term's logged value says little about its pull on the student (BPKD's body term
logs ~10 against a CE of ~1, and its gradient may be 2x or 20x the CE's); the ratio
of gradient norms does: ``‖∂(weighted term)/∂θ_student‖ / ‖∂CE/∂θ_student‖``. The
distiller measures it every ``profiles.<profile>.term_balance.interval`` iterations
(params.yaml; 0: never), with one extra backward pass per term through the graph the step has
already built, and logs ``balance.<term>`` (``loss_bpkd_edge`` → ``balance.bpkd_edge``)
to the run's DVCLive step log; the plots page draws it per method (``charts@``).
The extra passes read gradients with ``torch.autograd.grad``, which leaves the
parameters' ``.grad`` and every random state alone: the weights trained are those of
a run without the measurement.
"""
from __future__ import annotations

import torch
from torch import Tensor

CE_KEY = "decode.loss_ce"
PREFIX = "balance."


def due(iteration: int, interval: int) -> bool:
    """Whether the step of 0-based ``iteration`` measures (steps ``interval``, 2x, …)."""
    return interval > 0 and (iteration + 1) % interval == 0


def _norm(loss: Tensor, params: list[Tensor], scale: float) -> float:
    grads = torch.autograd.grad(loss * scale, params, retain_graph=True, allow_unused=True)
    total = sum(float(g.double().pow(2).sum()) for g in grads if g is not None)
    return total ** 0.5 / scale


def ratios(losses: dict[str, Tensor], params: list[Tensor], method_keys: list[str], scale: float = 1.0) -> dict:
    """``{"balance.<term>": ‖∇term‖ / ‖∇CE‖}`` for each of ``method_keys`` (the method's
    own weighted terms in ``losses``), and ``balance.ce_grad_norm``, the CE's own norm.

    ``scale`` multiplies each loss before its backward and divides the norm after: an
    fp16 run passes its loss scale, so that small gradients do not underflow.
    """
    ce = _norm(losses[CE_KEY], params, scale)
    out = {f"{PREFIX}ce_grad_norm": ce}
    for key in method_keys:
        term = losses[key]
        if not term.requires_grad:
            continue  # a term with weight 0 (or no path to the student) pulls on nothing
        out[PREFIX + key.removeprefix("loss_")] = _norm(term, params, scale) / ce if ce > 0 else float("nan")
    return out
