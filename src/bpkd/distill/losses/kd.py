"""Pixel-wise knowledge distillation on logits (the add-on term of SKDS, IFVD and CIRKD).

Formula (spec §0, batchmean convention of the CIRKD benchmark, the default):

    L_kd = tau^2 / (N*h*w) * sum_{n,i} KL( softmax_k(Z^T[n,:,i]/tau) || softmax_k(Z^S[n,:,i]/tau) )

i.e. the KL divergence summed over the K classes and averaged over the N*h*w pixel rows.
The official SKD and IFVD code normalise differently (spec §0, "Normalisation pitfall"),
so both the divergence and the reduction are choices:

* ``divergence``: ``kl`` (above) or ``cross_entropy``, ``sum_k -p^T_k log p^S_k`` = KL plus
  the teacher's entropy (same gradient for the student, a larger logged value): the
  official SKD pixel-wise term (Liu et al., CVPR 2019, arXiv:1903.04197);
* ``reduction``: what the sum over ``n, i, k`` is divided by: ``pixels`` ``N*h*w`` (CIRKD's
  batchmean), ``elements`` ``N*K*h*w`` (``nn.KLDivLoss``'s default ``mean``, the official
  IFVD code, Wang et al., ECCV 2020, arXiv:2008.00576), or ``spatial`` ``h*w`` only, a sum
  over the batch that grows with N (the official SKD code).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import resize_like

DIVERGENCES = ("kl", "cross_entropy")
REDUCTIONS = ("pixels", "elements", "spatial")


def pixel_kd(student_logits: Tensor, teacher_logits: Tensor, tau: float = 1.0, divergence: str = "kl",
             reduction: str = "pixels") -> Tensor:
    """Per-pixel divergence over classes, summed and divided per ``reduction``, times ``tau**2``.

    Args:
        student_logits: ``(N, K, h, w)`` student logits (gradient flows).
        teacher_logits: ``(N, K, h', w')`` teacher logits; detached and, when the size
            differs, bilinearly resized to the student's ``h x w``.
        tau: temperature (> 0).
        divergence: one of ``DIVERGENCES``.
        reduction: one of ``REDUCTIONS``.

    Returns:
        A scalar fp32 tensor.
    """
    if tau <= 0:
        raise ValueError(f"pixel_kd: tau = {tau!r} is invalid; expected a number > 0")
    if divergence not in DIVERGENCES:
        raise ValueError(f"pixel_kd: divergence = {divergence!r} is invalid; expected one of {DIVERGENCES}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"pixel_kd: reduction = {reduction!r} is invalid; expected one of {REDUCTIONS}")
    with torch.autocast(device_type=student_logits.device.type, enabled=False):
        s = student_logits.float()
        t = resize_like(teacher_logits.detach().float(), s)
        n, k, h, w = s.shape
        # (N, K, h, w) -> (N*h*w, K): one row per pixel.
        s = s.permute(0, 2, 3, 1).reshape(-1, k)
        t = t.permute(0, 2, 3, 1).reshape(-1, k)
        log_ps = F.log_softmax(s / tau, dim=1)
        log_pt = F.log_softmax(t / tau, dim=1)
        if divergence == "kl":
            total = (log_pt.exp() * (log_pt - log_ps)).sum()
        else:
            total = -(log_pt.exp() * log_ps).sum()
        count = {"pixels": n * h * w, "elements": n * k * h * w, "spatial": h * w}[reduction]
        return total / count * (tau * tau)
