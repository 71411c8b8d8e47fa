"""IFVD: intra-class feature variation distillation (+ pixel KD + holistic GAN)."""
from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import DistillLoss, Recorded, parse_params, resize_like
from .discriminator import Discriminator, adversarial_generator_term, discriminator_hinge_term
from .kd import pixel_kd

GROUP = "ifvd"

# CIRKD benchmark settings (spec §4): IFV 20, pixel KD 1.0 at tau 1 (batchmean), hinge
# GAN with G weight 0.001 and D weight 0.1, D optimiser Adam lr 4e-4 (betas 0.9, 0.99).
# The official IFVD defaults (IFV 200, mean-reduced KD 10, WGAN-GP) are not used here.
DEFAULTS: dict[str, Any] = {
    "ifv_weight": 20.0,
    "kd_weight": 1.0,
    "kd_tau": 1.0,
    "adv_weight": 0.001,
    "d_weight": 0.1,
    "d_lr": 4e-4,
    "d_base_channels": 64,
    "mean_over_valid": False,
}
# kind of each key: "nonneg" number >= 0, "pos" number > 0, "int" positive int, "bool".
_KINDS = {
    "ifv_weight": "nonneg", "kd_weight": "nonneg", "kd_tau": "pos", "adv_weight": "nonneg",
    "d_weight": "nonneg", "d_lr": "nonneg", "d_base_channels": "int", "mean_over_valid": "bool",
}


def _parse_params(params: Optional[dict]) -> dict[str, Any]:
    """Merge ``params`` over DEFAULTS, rejecting unknown keys and bad values."""
    out = parse_params(params, DEFAULTS, _KINDS, GROUP)
    return out


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
    """Intra-class feature variation distillation + pixel KD + holistic hinge GAN.

    From "Intra-class Feature Variation Distillation for Semantic Segmentation", Yukang Wang,
    Wei Zhou, Tao Jiang, Xiang Bai and Yongchao Xu, ECCV 2020, arXiv:2008.00576.

    Terms (spec §4), each already weighted:

    * ``loss_ifvd_ifv``: ``ifv_weight * ifv_loss(F^S, F^T, Y)`` on decode features;
    * ``loss_ifvd_kd``: ``kd_weight * pixel_kd(Z^S, Z^T, kd_tau)``;
    * ``loss_ifvd_adv``: ``adv_weight * (-mean D(Z^S))``, exactly as in :class:`SKDSLoss`.

    The discriminator protocol is that of :class:`SKDSLoss`: the caller steps only the
    student optimiser after :meth:`forward` (D's parameters are frozen while the generator
    term is built, so no gradient reaches them), then zeroes D's grads and steps D
    (lr ``self.d_lr``, Adam betas ``self.d_betas``) on :meth:`discriminator_loss`.

    Defaults are the CIRKD benchmark settings (see ``DEFAULTS``). The student prototypes
    keep their gradient (not detached), as in the reference.
    """

    uses_features = True
    DEFAULTS = DEFAULTS

    has_discriminator = True

    def __init__(self, params: dict, num_classes: int, student_channels: int, teacher_channels: int,
                 ignore_index: int = 255) -> None:
        super().__init__(num_classes, student_channels, teacher_channels, ignore_index)
        self.params = _parse_params(params)
        p = self.params
        self.ifv_weight = p["ifv_weight"]
        self.kd_weight = p["kd_weight"]
        self.kd_tau = p["kd_tau"]
        self.adv_weight = p["adv_weight"]
        self.d_weight = p["d_weight"]
        self.d_lr = p["d_lr"]
        self.d_betas = (0.9, 0.99)
        self.mean_over_valid = p["mean_over_valid"]
        self.discriminator = Discriminator(num_classes, base_channels=p["d_base_channels"])

    def forward(self, student: Recorded, teacher: Recorded, labels: Tensor) -> dict[str, Tensor]:
        if student.features is None or teacher.features is None:
            raise ValueError("IFVDLoss needs decode features of both student and teacher (uses_features=True)")
        with torch.autocast(device_type=student.logits.device.type, enabled=False):
            zs = student.logits.float()
            zt = resize_like(teacher.logits.detach().float(), zs)
            zero = zs.new_zeros(())
            ifv = (ifv_loss(student.features, teacher.features, labels, self.num_classes,
                            self.mean_over_valid, self.ignore_index)
                   if self.ifv_weight > 0 else zero)
            kd = pixel_kd(zs, zt, self.kd_tau) if self.kd_weight > 0 else zero
            adv = adversarial_generator_term(self.discriminator, zs) if self.adv_weight > 0 else zero
        return {
            "loss_ifvd_ifv": self.ifv_weight * ifv,
            "loss_ifvd_kd": self.kd_weight * kd,
            "loss_ifvd_adv": self.adv_weight * adv,
        }

    def discriminator_loss(self, student_logits: Tensor, teacher_logits: Tensor) -> dict[str, Tensor]:
        """``{"loss_ifvd_d": d_weight * hinge}`` on detached student (fake) and teacher (real) logits."""
        hinge = discriminator_hinge_term(self.discriminator, student_logits, teacher_logits)
        return {"loss_ifvd_d": self.d_weight * hinge}
