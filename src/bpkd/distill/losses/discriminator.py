"""The holistic (adversarial) part shared by SKDS and IFVD.

A SAGAN-style discriminator scores a segmentation logit map; the student is pushed
to produce maps the discriminator cannot tell from the teacher's. Two formulations
(``adv_loss``; spec §3), with ``Z^T`` real and ``Z^S`` fake:

* ``hinge`` (the CIRKD benchmark's):
  ``L_D = mean relu(1 - D(Z^T)) + mean relu(1 + D(Z^S))``;
* ``wgan_gp`` (the official SKD and IFVD code's): a critic with a gradient penalty,
  ``L_D = mean D(Z^S) - mean D(Z^T) + gp_weight * E[(||grad_x D(x)|_{x = x_hat}||_2 - 1)^2]``,
  ``x_hat = eps * Z^T + (1 - eps) * Z^S``, ``eps ~ U[0, 1]`` per sample (WGAN-GP:
  Gulrajani, Ahmed, Arjovsky, Dumoulin and Courville, "Improved Training of Wasserstein
  GANs", NeurIPS 2017, arXiv:1704.00028).

Both use the generator (student) loss ``L_adv(G) = - mean D(Z^S)`` (D frozen; Z^S detached
in the D step). The caller weights ``L_D`` by ``d_weight`` (the official code multiplies
the penalty by ``lambda_d`` too) and ``L_adv`` by ``adv_weight``.

Architecture (spec §3): BatchNorm on the K-channel input, four spectral-norm
Conv4x4/stride2/pad1 + LeakyReLU(0.1) blocks with base*{1,2,4,8} channels
(64/128/256/512 by default), self-attention after the 4*base and 8*base blocks,
then a final Conv4x4 (no padding) to one channel; the score is the output map.

The discriminator's own optimiser and LR schedule are knobs too
(:data:`D_OPTIMIZERS`, :data:`D_SCHEDULES`; :func:`optimizer_config` and
:func:`scheduler_config` turn them into mmengine configs).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from .base import resize_like

ADV_LOSSES = ("hinge", "wgan_gp")


def _pad_to_min(x: Tensor, size: int) -> Tensor:
    """Zero-pad ``x`` (symmetrically) so that both spatial sides are >= ``size``.

    Inputs already large enough are returned unchanged, so for the usual logit sizes
    (e.g. 64x128 at 1/8 of a 512x1024 crop) the network is exactly the reference one.
    """
    h, w = x.shape[-2:]
    ph, pw = max(size - h, 0), max(size - w, 0)
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))


class SelfAttention(nn.Module):
    """SAGAN self-attention: 1x1 query/key convs to C/8, value conv to C, softmax over
    positions, learnable ``gamma`` initialised to 0, residual connection.

    From "Self-Attention Generative Adversarial Networks", Zhang, Goodfellow, Metaxas and
    Odena, ICML 2019, arXiv:1805.08318.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        inner = max(channels // 8, 1)
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        q = self.query(x).flatten(2)  # (n, c', p)
        k = self.key(x).flatten(2)  # (n, c', p)
        v = self.value(x).flatten(2)  # (n, c, p)
        attn = torch.softmax(torch.bmm(q.transpose(1, 2), k), dim=-1)  # (n, p_out, p_in)
        out = torch.bmm(v, attn.transpose(1, 2)).view(n, c, h, w)
        return self.gamma * out + x


class Discriminator(nn.Module):
    """SAGAN-style discriminator on K-channel segmentation logits (SKDS holistic loss).

    From "Structured Knowledge Distillation for Semantic Segmentation", Liu, Chen, Liu,
    Qu, Luo and Wang, CVPR 2019 (extended in TPAMI 2020 as "Structured Knowledge
    Distillation for Dense Prediction"), arXiv:1903.04197; self-attention blocks from
    SAGAN (Zhang et al., ICML 2019, arXiv:1805.08318).

    Args:
        num_classes: K, the input channel count.
        base_channels: width of the first block (64 in the reference); the blocks use
            base, 2*base, 4*base, 8*base channels. Tests and CPU runs shrink it.
    """

    def __init__(self, num_classes: int, base_channels: int = 64) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"Discriminator: num_classes = {num_classes!r}; expected a positive int")
        if isinstance(base_channels, bool) or not isinstance(base_channels, int) or base_channels < 1:
            raise ValueError(f"Discriminator: base_channels = {base_channels!r}; expected a positive int")
        b = base_channels
        self.input_norm = nn.BatchNorm2d(num_classes)
        widths = [num_classes, b, 2 * b, 4 * b, 8 * b]
        self.blocks = nn.ModuleList(
            nn.Sequential(
                spectral_norm(nn.Conv2d(widths[i], widths[i + 1], 4, stride=2, padding=1)),
                nn.LeakyReLU(0.1),
            )
            for i in range(4)
        )
        self.attn3 = SelfAttention(4 * b)
        self.attn4 = SelfAttention(8 * b)
        self.last = nn.Conv2d(8 * b, 1, 4)

    def forward(self, logits: Tensor) -> Tensor:
        """Return the ``(N, 1, h'', w'')`` score map of ``(N, K, h, w)`` logits."""
        x = self.input_norm(logits)
        for i, block in enumerate(self.blocks):
            # A 4x4/stride-2/pad-1 conv needs a side >= 2 (2 + 2*pad >= 4). Four halvings of
            # a small logit map (e.g. 8x16 -> 4x8 -> 2x4 -> 1x2) would leave a side of 1
            # before the 4th block and < 4 before the unpadded final 4x4 conv, which would
            # raise. Zero-padding only when a side is too small keeps normal-size inputs
            # bit-identical to the reference network and lets any input (>= 8x8 and
            # smaller) produce at least one score; adaptive pooling was not used because
            # it would change the network for normal-size inputs too.
            x = block(_pad_to_min(x, 2))
            if i == 2:
                x = self.attn3(x)
            elif i == 3:
                x = self.attn4(x)
        return self.last(_pad_to_min(x, 4))


def hinge_d_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """Hinge loss of the discriminator: ``mean relu(1 - real) + mean relu(1 + fake)``."""
    return F.relu(1.0 - real_scores).mean() + F.relu(1.0 + fake_scores).mean()


def generator_adv_loss(fake_scores: Tensor) -> Tensor:
    """Adversarial loss of the generator (student): ``-mean D(Z^S)``."""
    return -fake_scores.mean()


def adversarial_generator_term(discriminator: nn.Module, student_logits: Tensor) -> Tensor:
    """``generator_adv_loss(D(Z^S))`` with D's parameters frozen during the call.

    The gradient reaches the student logits but is never accumulated into D's parameters:
    they are set to ``requires_grad=False`` while the graph is built (autograd then treats
    them as constants) and their previous flags are restored afterwards, so the later D
    step is unaffected. (The caller steps only the student optimiser after the student
    backward and zeroes D's grads before the D step anyway.) D's BatchNorm running
    statistics and spectral-norm power iterations still update in training mode, as in
    the reference code.
    """
    params = list(discriminator.parameters())
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        scores = discriminator(student_logits)
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
    return generator_adv_loss(scores)


def wgan_critic_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """Wasserstein critic loss without its penalty: ``mean D(fake) - mean D(real)``."""
    return fake_scores.mean() - real_scores.mean()


def gradient_penalty(discriminator: nn.Module, real: Tensor, fake: Tensor,
                     eps: Tensor | None = None) -> Tensor:
    """WGAN-GP's penalty ``mean_n (||grad_x D(x)|_{x_hat_n}||_2 - 1)^2`` (unweighted).

    ``x_hat = eps * real + (1 - eps) * fake`` with one ``eps ~ U[0, 1]`` per sample
    (``eps`` may be given, shape ``(N,)``, for tests); the gradient is that of the sum of
    D's scores, taken with ``create_graph=True`` so that the penalty trains D, and its
    L2 norm is over every non-batch dimension of the sample (Gulrajani et al., NeurIPS
    2017, arXiv:1704.00028). ``real`` and ``fake`` enter as constants (detached).
    """
    real, fake = real.detach(), fake.detach()
    if eps is None:
        eps = torch.rand(real.shape[0], device=real.device, dtype=real.dtype)
    eps = eps.to(real).view(-1, *([1] * (real.dim() - 1)))
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    scores = discriminator(x_hat)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    norm = grad.flatten(1).norm(2, dim=1)
    return (norm - 1).pow(2).mean()


def discriminator_term(discriminator: nn.Module, student_logits: Tensor, teacher_logits: Tensor,
                       adv_loss: str = "hinge", gp_weight: float = 10.0) -> Tensor:
    """D's loss (``adv_loss`` in :data:`ADV_LOSSES`) on detached student (fake) and
    teacher (real) logits, unweighted by ``d_weight``.

    Both are cast to fp32 and the teacher map is resized to the student's size.
    Two separate D forwards, as in the reference (D's BatchNorm sees each net alone);
    ``wgan_gp`` adds a third, on the interpolates, for the penalty (``gp_weight`` times it).
    """
    if adv_loss not in ADV_LOSSES:
        raise ValueError(f"adv_loss = {adv_loss!r} is invalid; expected one of {ADV_LOSSES}")
    with torch.autocast(device_type=student_logits.device.type, enabled=False):
        fake = student_logits.detach().float()
        real = teacher_logits.detach().float()
        real = resize_like(real, fake)
        real_scores, fake_scores = discriminator(real), discriminator(fake)
        if adv_loss == "hinge":
            return hinge_d_loss(real_scores, fake_scores)
        critic = wgan_critic_loss(real_scores, fake_scores)
        if gp_weight == 0:
            return critic
        return critic + gp_weight * gradient_penalty(discriminator, real, fake)


# ----------------------------------------------------------------------------- D's optimiser
D_OPTIMIZERS = ("adam", "sgd")
D_SCHEDULES = ("constant", "poly")

# The knobs of the holistic part, shared by SKDS and IFVD, with their kinds
# (bpkd.distill.losses.base.parse_params). Values are each method's (its DEFAULTS).
ADV_KINDS: dict = {
    "adv_loss": ADV_LOSSES, "gp_weight": "nonneg", "adv_weight": "nonneg", "d_weight": "nonneg",
    "d_optimizer": D_OPTIMIZERS, "d_lr": "nonneg", "d_betas": "betas", "d_momentum": "nonneg",
    "d_weight_decay": "nonneg", "d_schedule": D_SCHEDULES, "d_poly_power": "nonneg", "d_base_channels": "int",
}


def optimizer_config(params: dict) -> dict:
    """mmengine optimizer config of D from a method's resolved knobs: ``adam`` uses
    ``d_lr``, ``d_betas`` and ``d_weight_decay``; ``sgd`` uses ``d_lr``, ``d_momentum`` and
    ``d_weight_decay``."""
    if params["d_optimizer"] == "adam":
        return dict(type="Adam", lr=float(params["d_lr"]), betas=tuple(float(b) for b in params["d_betas"]),
                    weight_decay=float(params["d_weight_decay"]))
    return dict(type="SGD", lr=float(params["d_lr"]), momentum=float(params["d_momentum"]),
                weight_decay=float(params["d_weight_decay"]))


def scheduler_config(params: dict, iters: int) -> list[dict]:
    """mmengine param schedulers of D: none (``constant``) or, for ``poly``, mmengine's
    ``PolyLR`` by iteration from ``d_lr`` down to 0 at the run's last iteration,
    ``d_lr * (1 - t/(iters - 1))^d_poly_power`` (the student's convention too)."""
    if params["d_schedule"] == "constant":
        return []
    return [dict(type="PolyLR", eta_min=0.0, power=float(params["d_poly_power"]), begin=0, end=int(iters),
                 by_epoch=False)]
