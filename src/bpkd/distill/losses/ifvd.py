"""IFVD: intra-class feature variation distillation (+ pixel KD + holistic GAN)."""
from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import DistillLoss, Recorded, parse_params, resize_like
from .discriminator import ADV_KINDS, Discriminator, adversarial_generator_term, discriminator_term
from .kd import DIVERGENCES, REDUCTIONS, pixel_kd

GROUP = "ifvd"

# CIRKD benchmark settings (spec §4), the default: IFV 20, pixel KD 1.0 at tau 1 (KL,
# batchmean), hinge GAN with G weight 0.001 and D weight 0.1, D optimiser Adam lr 4e-4
# (betas 0.9, 0.99) at a constant LR.
DEFAULTS: dict[str, Any] = {
    "ifv_weight": 20.0,
    "kd_weight": 1.0,
    "kd_tau": 1.0,
    "kd_divergence": "kl",
    "kd_reduction": "pixels",
    "mean_over_valid": False,
    "adv_loss": "hinge",
    "gp_weight": 10.0,
    "adv_weight": 0.001,
    "d_weight": 0.1,
    "d_optimizer": "adam",
    "d_lr": 4e-4,
    "d_betas": (0.9, 0.99),
    "d_momentum": 0.9,
    "d_weight_decay": 0.0,
    "d_schedule": "constant",
    "d_poly_power": 0.9,
    "d_base_channels": 64,
}
# The official code's defaults (YukangWang/IFVD: options.py, utils/criterion.py,
# networks/kd_model.py, train.py; docs/methods.md, "SKDS and IFVD: benchmark or official"): IFV 200
# (MSE over N*h*w, as here), KD 10 with nn.KLDivLoss's mean over N*K*h*w, WGAN-GP
# (penalty 10) with G weight 0.001 and D weight 0.1, D optimiser Adam lr 4e-4 (0.9, 0.99)
# on the student's poly schedule (power 0.9, to 0).
OFFICIAL: dict[str, Any] = dict(
    DEFAULTS,
    ifv_weight=200.0, kd_weight=10.0, kd_reduction="elements", adv_loss="wgan_gp", d_schedule="poly",
)
PRESETS: dict[str, dict[str, Any]] = {"benchmark": DEFAULTS, "official": OFFICIAL}

# kind of each key (bpkd.distill.losses.base.parse_params).
_KINDS = {
    "ifv_weight": "nonneg", "kd_weight": "nonneg", "kd_tau": "pos", "kd_divergence": DIVERGENCES,
    "kd_reduction": REDUCTIONS, "mean_over_valid": "bool", **ADV_KINDS,
}


def parse_ifvd_params(params: Optional[dict], defaults: dict = DEFAULTS, group: str = GROUP) -> dict[str, Any]:
    """Merge ``params`` over ``defaults``, rejecting unknown keys and bad values (errors
    name ``<group>.<key>``)."""
    return parse_params(params, defaults, _KINDS, group)


def resize_labels(labels: Tensor, size: tuple[int, int]) -> Tensor:
    """Nearest-resize ``(N, H, W)`` (or ``(N, 1, H, W)``) labels to ``size`` -> ``(N, h, w)`` long."""
    if labels.dim() == 4:
        labels = labels[:, 0]
    if tuple(labels.shape[-2:]) != tuple(size):
        labels = F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0]
    return labels.long()


def ifv_map(features: Tensor, labels: Tensor, num_classes: int,
            ignore_index: int = 255) -> tuple[Tensor, Tensor]:
    """Cosine between each pixel's feature and its class prototype in the same image.

    Args:
        features: ``(N, C, h, w)`` fp32 features.
        labels: ``(N, h, w)`` long labels at feature size; ``ignore_index`` and values
            outside ``[0, K)`` are invalid.
        num_classes: K.
        ignore_index: the ignore label.

    Returns:
        ``(ifv, valid)``, both ``(N, h*w)``: the cosine map (entries at invalid pixels are
        meaningless) and the bool validity mask. Prototypes are per image and per class,
        ``sum_i 1[y_i=k] f_i / (count_k + 1e-6)``, computed with one one-hot ``bmm``.
    """
    n, c = features.shape[:2]
    f = features.flatten(2)  # (N, C, P)
    y = labels.flatten(1)  # (N, P)
    valid = (y >= 0) & (y < num_classes) & (y != ignore_index)
    onehot = F.one_hot(torch.where(valid, y, torch.zeros_like(y)), num_classes).to(f.dtype)
    onehot = onehot * valid[..., None].to(f.dtype)  # (N, P, K); ignore rows all zero
    counts = onehot.sum(dim=1)  # (N, K)
    protos = torch.bmm(onehot.transpose(1, 2), f.transpose(1, 2)) / (counts[..., None] + 1e-6)  # (N, K, C)
    proto_per_pixel = torch.bmm(onehot, protos)  # (N, P, C); zero at ignore pixels
    ifv = F.cosine_similarity(f, proto_per_pixel.transpose(1, 2), dim=1, eps=1e-8)  # (N, P)
    return ifv, valid


def ifv_loss(student_features: Tensor, teacher_features: Tensor, labels: Tensor, num_classes: int,
             mean_over_valid: bool = False, ignore_index: int = 255) -> Tensor:
    """IFVD loss: squared difference of the S and T IFV maps.

    Teacher features are detached and resized to the student's size; labels are
    nearest-resized to it. Ignore pixels contribute 0 (in the official code their
    "prototype" is their own feature, so both cosines are 1). With
    ``mean_over_valid=False`` the sum is divided by ``N*h*w`` (official quirk: ignore
    pixels count in the denominator); with ``True`` by the number of valid pixels.
    """
    with torch.autocast(device_type=student_features.device.type, enabled=False):
        fs = student_features.float()
        ft = resize_like(teacher_features.detach().float(), fs)
        y = resize_labels(labels.to(fs.device), tuple(fs.shape[-2:]))
        m_s, valid = ifv_map(fs, y, num_classes, ignore_index)
        with torch.no_grad():
            m_t, _ = ifv_map(ft, y, num_classes, ignore_index)
        sq = (m_s - m_t).pow(2) * valid.to(fs.dtype)
        if mean_over_valid:
            return sq.sum() / valid.sum().clamp_min(1)
        return sq.sum() / sq.numel()


class IFVDLoss(DistillLoss):
    """Intra-class feature variation distillation + pixel KD + holistic GAN.

    From "Intra-class Feature Variation Distillation for Semantic Segmentation", Yukang Wang,
    Wei Zhou, Tao Jiang, Xiang Bai and Yongchao Xu, ECCV 2020, arXiv:2008.00576.

    Terms (spec §4), each already weighted:

    * ``loss_ifvd_ifv``: ``ifv_weight * ifv_loss(F^S, F^T, Y)`` on decode features;
    * ``loss_ifvd_kd``: ``kd_weight * pixel_kd(Z^S, Z^T, kd_tau, kd_divergence, kd_reduction)``;
    * ``loss_ifvd_adv``: ``adv_weight * (-mean D(Z^S))``, exactly as in :class:`SKDSLoss`.

    The discriminator protocol is that of :class:`SKDSLoss`: the caller steps only the
    student optimiser after :meth:`forward` (D's parameters are frozen while the generator
    term is built, so no gradient reaches them), then zeroes D's grads and steps D (its
    own optimiser, :func:`~.discriminator.optimizer_config`) on :meth:`discriminator_loss`.

    ``DEFAULTS`` are the CIRKD benchmark settings, ``OFFICIAL`` the official code's
    (``PRESETS``; the ``ifvd.preset`` switch). The student prototypes keep their gradient
    (not detached), as in the reference.
    """

    uses_features = True
    DEFAULTS = DEFAULTS
    PRESETS = PRESETS

    has_discriminator = True

    @staticmethod
    def parse(params: Optional[dict], defaults: dict = DEFAULTS, group: str = GROUP) -> dict[str, Any]:
        return parse_ifvd_params(params, defaults, group)

    def __init__(self, params: dict, num_classes: int, student_channels: int, teacher_channels: int,
                 ignore_index: int = 255) -> None:
        super().__init__(num_classes, student_channels, teacher_channels, ignore_index)
        self.params = parse_ifvd_params(params)
        p = self.params
        self.ifv_weight = p["ifv_weight"]
        self.kd_weight = p["kd_weight"]
        self.kd_tau = p["kd_tau"]
        self.adv_weight = p["adv_weight"]
        self.d_weight = p["d_weight"]
        self.d_lr = p["d_lr"]
        self.d_betas = p["d_betas"]
        self.mean_over_valid = p["mean_over_valid"]
        self.discriminator = Discriminator(num_classes, base_channels=p["d_base_channels"])

    def forward(self, student: Recorded, teacher: Recorded, labels: Tensor) -> dict[str, Tensor]:
        if student.features is None or teacher.features is None:
            raise ValueError("IFVDLoss needs decode features of both student and teacher (uses_features=True)")
        p = self.params
        with torch.autocast(device_type=student.logits.device.type, enabled=False):
            zs = student.logits.float()
            zt = resize_like(teacher.logits.detach().float(), zs)
            zero = zs.new_zeros(())
            ifv = (ifv_loss(student.features, teacher.features, labels, self.num_classes,
                            self.mean_over_valid, self.ignore_index)
                   if self.ifv_weight > 0 else zero)
            kd = (pixel_kd(zs, zt, self.kd_tau, p["kd_divergence"], p["kd_reduction"])
                  if self.kd_weight > 0 else zero)
            adv = adversarial_generator_term(self.discriminator, zs) if self.adv_weight > 0 else zero
        return {
            "loss_ifvd_ifv": self.ifv_weight * ifv,
            "loss_ifvd_kd": self.kd_weight * kd,
            "loss_ifvd_adv": self.adv_weight * adv,
        }

    def discriminator_loss(self, student_logits: Tensor, teacher_logits: Tensor) -> dict[str, Tensor]:
        """``{"loss_ifvd_d": d_weight * L_D}`` (hinge, or WGAN critic + ``gp_weight`` x penalty)
        on detached student (fake) and teacher (real) logits."""
        d = discriminator_term(self.discriminator, student_logits, teacher_logits, self.params["adv_loss"],
                               self.params["gp_weight"])
        return {"loss_ifvd_d": self.d_weight * d}
