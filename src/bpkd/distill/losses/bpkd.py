"""BPKD: boundary-privileged distillation of the decode-head logits (``params.yaml`` group ``loss``)."""
from __future__ import annotations

from typing import Any, Mapping, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ..masks import soft_edge_mask
from .base import DistillLoss, Recorded, check_positive, resize_like
from .base import merge_params
from .cwd import channel_wise_divergence

__all__ = ["BPKDLoss"]

# Logit (already divided by tau) given to excluded entries in ``mask_mode="exclude"``:
# finite, so that a fully excluded row stays NaN-free, yet exp() of it is exactly 0 in fp32.
_EXCLUDED = -1e9

_MASK_MODES = ("multiply", "exclude")

# What the edge loss's last box of the paper's Figure 3, "Sum / Mask Pixels", divides
# by (kd_methods.md section 1.6): the figure does not say which pixels it counts.
EDGE_NORMS = ("per_class", "per_class_mass", "mask_mass", "mask_cells", "frame", "gt_pixels")


class BPKDLoss(DistillLoss):
    """Boundary Privileged Knowledge Distillation: separate edge and body terms on logits.

    Paper: "BPKD: Boundary Privileged Knowledge Distillation For Semantic Segmentation",
    Liyang Liu, Zihan Wang, Minh Hieu Phan, Bowen Zhang, Jinchao Ge, Yifan Liu,
    WACV 2024, arXiv:2306.08075. The authors never released training code; this
    follows the paper's Figure 3 (``shared/reference/kd_methods.md`` section 1.6) and,
    where the figure is silent, the reconstruction of section 1.3 (three independent
    re-implementations agree on the structure).

    With ``Z`` the student or teacher decode-head logits ``(N, K, h, w)`` (teacher
    detached and bilinearly resized to the student's size) and ``M_E`` the per-class
    soft edge mask of :func:`bpkd.distill.masks.soft_edge_mask` (GT bands ``G`` of radius
    ``edge_width``, i.e. a ``(2r+1)x(2r+1)`` kernel, at label resolution ``H x W``,
    average-pooled to ``h x w``):

    * edge, per pixel (``mask_mode="multiply"``, pre-mask filtering then softmax over C):
      ``phi_{n,i} = tau_E^2 * KL(softmax_k(Z^T M_E / tau_E) || softmax_k(Z^S M_E / tau_E))``,
      the KL summed over classes; then repeated over C and post-masked, summed over the
      positions: ``S_{n,c} = sum_i phi_{n,i} * M_E[n,c,i]``, and weighted by ``alpha``.
      The last box of Figure 3, "Sum / Mask Pixels", is read by ``edge_norm``:

      - ``per_class`` (section 1.3's transcription): ``L_E = 1/N sum_{n,c} alpha S_{n,c} / n_{n,c}``,
        ``n_{n,c} = #{i: M_E[n,c,i] > 0}``; classes with ``n_{n,c} = 0`` add 0;
      - ``per_class_mass``: the same with ``n_{n,c} = sum_i M_E[n,c,i]``;
      - one sum over the batch and the classes divided by one count ``D``,
        ``L_E = alpha sum_{n,c} S_{n,c} / D`` (0 when ``D = 0``), with ``D`` =
        ``mask_mass``: ``sum_{n,c,i} M_E`` (the soft mask's mass);
        ``mask_cells``: ``#{(n,c,i): M_E > 0}`` (its non-zero cells);
        ``frame``: ``N h w`` (every logit cell: a whole-frame mean);
        ``gt_pixels``: ``sum_{n,c,p} G`` (the ones of the "GT Mask (1/0)" box,
        ``K x H x W`` at label resolution, before AvgPool2D; a pixel between classes
        A and B counts in both channels). For a stride ``s`` with ``H = s h``,
        ``gt_pixels = s^2 * mask_mass``.

    * body (``mask_mode="multiply"``): ``L_B = CWD(Z^S (1 - M_E), Z^T (1 - M_E), tau_B)``,
      a softmax over the spatial positions of each class channel,
      ``tau_B^2/(N*K) * sum_{n,c} KL`` (CWD's normalisation).
    * ``mask_mode="exclude"``: instead of multiplying (which gives masked entries logit 0,
      still holding probability mass), masked entries are removed from the softmax and
      the raw logits are kept: the edge softmax at a pixel runs over the classes with
      ``M_E > 0`` there, the body softmax of channel ``c`` over the positions with
      ``M_E[c] == 0``. Pixels / channels with nothing left contribute 0. The post-mask
      weighting and the normalisation of the edge term are unchanged.

    The ``tau^2`` factor multiplies each term with its own temperature (as in Hinton's
    KD and CWD), so that the gradient's scale does not shrink as ``1/tau^2``. Figure 3
    draws no temperature; re-implementations use 1 or 4.

    Returns ``{"loss_bpkd_edge": edge_weight * L_E, "loss_bpkd_body": body_weight * L_B}``.

    Params (group ``loss``): ``edge_weight`` 50, ``body_weight`` 20, ``alpha`` 2 (one
    alpha for every class), ``edge_width`` 3 (kernel 7): the published values, the radius
    read at the paper's resolution and converted by the distill stage to the data's image
    scale (:mod:`bpkd.distill.band_radius`: 1 px on the demo's 256x512 scenes);
    ``edge_tau`` 4 and ``body_tau`` 4; ``edge_norm`` (``EDGE_NORMS``; the default is the
    reading chosen by measurement, docs/bpkd-figure3.md); ``mask_mode``
    ``multiply`` or ``exclude``. Ignore handling is fixed, not a param: ignore/padding
    pixels are neutral in the trimap (no band at a class/void transition, matching the
    boolean ``edge_body_masks``), and, as in CWD, the body softmax still runs over
    ignore positions (their ``M_E`` is 0).
    """

    DEFAULTS: dict[str, Any] = {
        "edge_weight": 50.0,
        "body_weight": 20.0,
        "edge_tau": 4.0,
        "body_tau": 4.0,
        "edge_width": 3,
        "alpha": 2.0,
        "edge_norm": "gt_pixels",
        "mask_mode": "multiply",
    }
    GROUP = "loss"
    # Params in label pixels at the paper's resolution (bpkd.distill.band_radius).
    RADII = ("edge_width",)

    def __init__(self, params: Optional[Mapping[str, Any]], num_classes: int, student_channels: int,
                 teacher_channels: int, ignore_index: int = 255) -> None:
        super().__init__(num_classes, student_channels, teacher_channels, ignore_index)
        group = self.GROUP
        merged = merge_params(params, self.DEFAULTS, group)
        self.edge_weight = check_positive(merged, "edge_weight", group, allow_zero=True)
        self.body_weight = check_positive(merged, "body_weight", group, allow_zero=True)
        self.alpha = check_positive(merged, "alpha", group, allow_zero=True)
        self.edge_tau = check_positive(merged, "edge_tau", group, allow_zero=False)
        self.body_tau = check_positive(merged, "body_tau", group, allow_zero=False)
        width = merged["edge_width"]
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"params: {group}.edge_width = {width!r} is invalid; expected an int >= 1 "
                             "(band radius r, kernel 2r+1)")
        self.edge_width = width
        self.edge_norm = self._check_choice(merged, "edge_norm", EDGE_NORMS)
        self.mask_mode = self._check_choice(merged, "mask_mode", _MASK_MODES)

    @classmethod
    def _check_choice(cls, params: Mapping[str, Any], key: str, choices: tuple[str, ...]) -> str:
        value = params[key]
        if not isinstance(value, str) or value not in choices:
            raise ValueError(f"params: {cls.GROUP}.{key} = {value!r} is invalid; expected one of "
                             f"{', '.join(repr(c) for c in choices)}")
        return value

    def forward(self, student: Recorded, teacher: Recorded, labels: Tensor) -> dict[str, Tensor]:
        z_s = student.logits
        if z_s.dim() != 4 or z_s.shape[1] != self.num_classes:
            raise ValueError(f"student logits must be (N, {self.num_classes}, h, w); "
                             f"got {tuple(z_s.shape)}")
        if teacher.logits.shape[:2] != z_s.shape[:2]:
            raise ValueError(f"teacher logits {tuple(teacher.logits.shape)} do not match the student's "
                             f"batch and classes {tuple(z_s.shape[:2])}")
        with torch.autocast(device_type=z_s.device.type, enabled=False):
            z_s = z_s.float()
            with torch.no_grad():
                z_t = resize_like(teacher.logits.detach().float(), z_s)
                m_e, band_pixels = soft_edge_mask(labels.to(z_s.device), self.num_classes, self.edge_width,
                                                  z_s.shape[-2:], self.ignore_index, return_band_pixels=True)
            edge = self._edge_loss(z_s, z_t, m_e, band_pixels)
            body = self._body_loss(z_s, z_t, m_e)
        return {"loss_bpkd_edge": self.edge_weight * edge,
                "loss_bpkd_body": self.body_weight * body}

    def _edge_loss(self, z_s: Tensor, z_t: Tensor, m_e: Tensor, band_pixels: Tensor) -> Tensor:
        tau = self.edge_tau
        if self.mask_mode == "multiply":
            log_s = F.log_softmax(z_s * m_e / tau, dim=1)
            log_t = F.log_softmax(z_t * m_e / tau, dim=1)
            phi = (log_t.exp() * (log_t - log_s)).sum(dim=1)
        else:
            keep = m_e > 0
            log_s = F.log_softmax((z_s / tau).masked_fill(~keep, _EXCLUDED), dim=1)
            log_t = F.log_softmax((z_t / tau).masked_fill(~keep, _EXCLUDED), dim=1)
            terms = log_t.exp() * (log_t - log_s)
            phi = torch.where(keep, terms, torch.zeros_like(terms)).sum(dim=1)
        phi = phi * tau ** 2                                    # (N, h, w)
        weighted = self.alpha * (phi.unsqueeze(1) * m_e).sum(dim=(2, 3))  # (N, K): alpha sum_i phi M_E
        if self.edge_norm in ("per_class", "per_class_mass"):
            if self.edge_norm == "per_class":
                n_c = (m_e > 0).sum(dim=(2, 3)).to(weighted.dtype)
            else:
                n_c = m_e.sum(dim=(2, 3))
            per_class = torch.where(n_c > 0, weighted / n_c.clamp_min(torch.finfo(n_c.dtype).tiny),
                                    torch.zeros_like(weighted))
            return per_class.sum() / z_s.shape[0]
        with torch.no_grad():
            if self.edge_norm == "mask_mass":
                count = m_e.sum()
            elif self.edge_norm == "mask_cells":
                count = (m_e > 0).sum().to(weighted.dtype)
            elif self.edge_norm == "frame":
                count = weighted.new_tensor(float(phi.numel()))
            else:  # gt_pixels
                count = band_pixels.sum()
            # No edge in the whole batch: the sum is exactly 0 too; dividing it by 1 keeps
            # the loss and its gradient 0 (a tiny divisor would overflow the gradient).
            count = torch.where(count > 0, count, torch.ones_like(count))
        return weighted.sum() / count

    def _body_loss(self, z_s: Tensor, z_t: Tensor, m_e: Tensor) -> Tensor:
        tau = self.body_tau
        if self.mask_mode == "multiply":
            body = 1.0 - m_e
            return channel_wise_divergence(z_s * body, z_t * body, tau)
        n, k = z_s.shape[:2]
        keep = (m_e <= 0).reshape(n * k, -1)
        log_s = F.log_softmax((z_s.reshape(n * k, -1) / tau).masked_fill(~keep, _EXCLUDED), dim=1)
        log_t = F.log_softmax((z_t.reshape(n * k, -1) / tau).masked_fill(~keep, _EXCLUDED), dim=1)
        terms = log_t.exp() * (log_t - log_s)
        kl = torch.where(keep, terms, torch.zeros_like(terms)).sum()
        return kl * tau ** 2 / (n * k)

    def extra_repr(self) -> str:
        return (f"edge_weight={self.edge_weight}, body_weight={self.body_weight}, edge_tau={self.edge_tau}, "
                f"body_tau={self.body_tau}, edge_width={self.edge_width}, alpha={self.alpha}, "
                f"edge_norm={self.edge_norm!r}, mask_mode={self.mask_mode!r}")
