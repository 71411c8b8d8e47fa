"""Pixel-wise knowledge distillation on logits (the add-on term of SKDS, IFVD and CIRKD).

Formula (spec §0, batchmean convention of the CIRKD benchmark):

    L_kd = tau^2 / (N*h*w) * sum_{n,i} KL( softmax_k(Z^T[n,:,i]/tau) || softmax_k(Z^S[n,:,i]/tau) )

i.e. the KL divergence summed over the K classes and averaged over the N*h*w pixel rows.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import resize_like


def pixel_kd(student_logits: Tensor, teacher_logits: Tensor, tau: float = 1.0) -> Tensor:
    """Per-pixel KL over classes, ``batchmean`` over the N*h*w rows, times ``tau**2``.

    Args:
        student_logits: ``(N, K, h, w)`` student logits (gradient flows).
        teacher_logits: ``(N, K, h', w')`` teacher logits; detached and, when the size
            differs, bilinearly resized to the student's ``h x w``.
        tau: temperature (> 0).

    Returns:
        A scalar fp32 tensor.
    """
    if tau <= 0:
        raise ValueError(f"pixel_kd: tau = {tau!r} is invalid; expected a number > 0")
    with torch.autocast(device_type=student_logits.device.type, enabled=False):
        s = student_logits.float()
        t = resize_like(teacher_logits.detach().float(), s)
        k = s.shape[1]
        # (N, K, h, w) -> (N*h*w, K): one row per pixel.
        s = s.permute(0, 2, 3, 1).reshape(-1, k)
        t = t.permute(0, 2, 3, 1).reshape(-1, k)
        log_ps = F.log_softmax(s / tau, dim=1)
        log_pt = F.log_softmax(t / tau, dim=1)
        kl = (log_pt.exp() * (log_pt - log_ps)).sum()
        return kl / s.shape[0] * (tau * tau)
