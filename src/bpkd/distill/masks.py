"""Edge / body regions derived from ground-truth labels (BPKD's "adjustable trimap").

Two views of the same geometry, both computed with stride-1 max-pooling over a
``(2r+1) x (2r+1)`` window (``r = edge_width``, the *radius*; BPKD's 7x7 kernel is
``r = 3``):

* :func:`edge_body_masks` -- boolean masks at label resolution, used by the
  edge/body mIoU metrics. A valid pixel is *edge* when its window contains another
  valid class; *body* is every other valid pixel; ignore pixels are in neither.
* :func:`soft_edge_mask` -- BPKD's per-class soft mask ``M_E`` (see
  ``shared/reference/kd_methods.md`` section 1.3): per-class band
  ``G_c = dilate(O_c) - erode(O_c)`` restricted to valid pixels, average-pooled to the
  logit resolution.

Ignore pixels (``ignore_index``, also the crop padding) are *neutral*: they never
create an edge, so a class/ignore transition gives no band. ``max_pool2d`` pads
with ``-inf``, so the image border creates no edge either. The union over classes
of ``G_c > 0`` equals the boolean edge mask at label resolution.
"""
from __future__ import annotations

from typing import Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["edge_body_masks", "soft_edge_mask"]


def _check_edge_width(edge_width: object) -> int:
    if isinstance(edge_width, bool) or not isinstance(edge_width, int) or edge_width < 1:
        raise ValueError(f"edge_width = {edge_width!r} is invalid; expected an int >= 1 "
                         "(the band radius r; the window is (2r+1)x(2r+1))")
    return edge_width


def _as_nhw(labels: Tensor) -> Tensor:
    """Accept ``(N, H, W)`` or mmseg's stacked ``(N, 1, H, W)`` label maps."""
    if labels.dim() == 4 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.dim() != 3:
        raise ValueError(f"labels must have shape (N, H, W) or (N, 1, H, W); got {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor; got {labels.dtype}")
    return labels


def _box_max(x: Tensor, r: int) -> Tensor:
    """Stride-1 max over a ``(2r+1) x (2r+1)`` window; borders are padded with ``-inf``.
    (One 2-D pool rather than two separable 1-D pools: no extra K x H x W temporary.)"""
    return F.max_pool2d(x, 2 * r + 1, stride=1, padding=r)


def edge_body_masks(labels: Tensor, edge_width: int,
                    ignore_index: int = 255) -> tuple[Tensor, Tensor]:
    """Boolean edge and body masks at label resolution.

    Args:
        labels: ``(N, H, W)`` (or ``(N, 1, H, W)``) integer class map.
        edge_width: band radius ``r >= 1``; the window is ``(2r+1) x (2r+1)``, so a
            straight boundary between two classes gives a band ``2r`` pixels wide
            (``r`` on each side).
        ignore_index: label of void / padding pixels.

    Returns:
        ``(edge, body)``, both ``(N, H, W)`` bool on ``labels.device``. ``edge`` marks
        every valid pixel whose window holds another *valid* class; ``body`` is
        ``valid & ~edge``. Ignore pixels are in neither.

    Vectorised: one max-pool and one min-pool of the label map (ignore pixels are
    replaced by ``-inf`` for the max and ``+inf`` for the min, so they never take
    part); a valid pixel is edge iff the window's max valid class differs from its
    min valid class.
    """
    r = _check_edge_width(edge_width)
    y = _as_nhw(labels)
    with torch.no_grad():
        valid = y != ignore_index
        yf = y.to(torch.float32).unsqueeze(1)
        invalid = ~valid.unsqueeze(1)
        win_max = _box_max(yf.masked_fill(invalid, float("-inf")), r)
        win_min = _box_max(yf.neg_().masked_fill_(invalid, float("-inf")), r).neg_()
        del yf
        edge = valid & (win_max != win_min)[:, 0]
        body = valid & ~edge
    return edge, body


def _work_dtype(device: torch.device) -> torch.dtype:
    # The bands hold only 0/1, exact in fp16; fp16 halves the K x H x W footprint on
    # GPU (K = 150 on ADE20K). CPU stays in fp32 (fp16 pooling is slow there).
    return torch.float16 if device.type == "cuda" else torch.float32


def _edge_bands(y: Tensor, num_classes: int, r: int, ignore_index: int,
                ignore_is_boundary: bool, dtype: torch.dtype) -> Tensor:
    """Per-class band ``G`` of shape ``(N, K, H, W)`` (0/1 values in ``dtype``).

    ``G_c = dilate(O_c) AND NOT erode(O_c) AND valid``, with ``erode(O_c) = 1 -
    maxpool(1 - O'_c)``. ``O'_c = O_c`` plus the ignore pixels when they are neutral
    (``ignore_is_boundary=False``), so ignore pixels never erode a class.
    """
    n, h, w = y.shape
    valid = y != ignore_index
    out_of_range = valid & ((y < 0) | (y >= num_classes))
    if bool(out_of_range.any()):
        bad = torch.unique(y[out_of_range])[:8].tolist()
        raise ValueError(f"labels hold values {bad} outside [0, {num_classes}) that are not "
                         f"ignore_index={ignore_index}")
    validf = valid.unsqueeze(1).to(dtype)
    index = torch.where(valid, y, torch.zeros_like(y)).long().unsqueeze(1)
    onehot = torch.zeros((n, num_classes, h, w), dtype=dtype, device=y.device)
    onehot.scatter_(1, index, 1.0)
    del index
    onehot.mul_(validf)                                  # O_c: 0 at ignore pixels
    band = _box_max(onehot, r)                           # dilate(O_c)
    not_class = onehot.neg_().add_(1.0)                  # 1 - O_c (in place)
    del onehot
    if not ignore_is_boundary:
        not_class.mul_(validf)                           # 1 - O'_c: ignore is neutral
    has_other = _box_max(not_class, r)                   # = 1 - erode(O_c)
    del not_class
    band.mul_(has_other)                                 # dilate - erode, for 0/1 maps
    del has_other
    band.mul_(validf)
    return band


def soft_edge_mask(labels: Tensor, num_classes: int, edge_width: int,
                   out_size: Union[int, Sequence[int], torch.Size], ignore_index: int = 255,
                   *, ignore_is_boundary: bool = False,
                   return_band_pixels: bool = False) -> Union[Tensor, tuple[Tensor, Tensor]]:
    """BPKD's per-class soft edge mask ``M_E`` at logit resolution.

    Args:
        labels: ``(N, H, W)`` (or ``(N, 1, H, W)``) integer class map (label resolution).
        num_classes: ``K``; valid labels must lie in ``[0, K)``.
        edge_width: band radius ``r >= 1`` (kernel ``2r+1``; BPKD uses ``r = 3``).
        out_size: ``(h, w)`` logit size (or one int for a square).
        ignore_index: void / padding label.
        ignore_is_boundary: False (default, the project's choice and the only one the
            boolean API agrees with): ignore pixels are neutral and create no band.
            True: erosion treats ignore as "not class c", so a class/void transition
            gives a band inside the class (a [reimpl] variant; the paper is silent).

        return_band_pixels: also return the number of ones of the label-resolution
            band ``G`` (the "GT Mask (1/0)" of the paper's Figure 3, ``K x H x W`` per
            image), counted before pooling: BPKD's ``gt_pixels`` edge normalisation.

    Returns:
        ``(N, K, h, w)`` float32 in ``[0, 1]``: the fraction of each logit cell covered
        by class ``c``'s band ``G_c = clamp(dilate(O_c) - erode(O_c), 0, 1) * valid``
        (``avg_pool2d`` with stride ``H/h`` when divisible, else adaptive avg-pool).
        A pixel of class A next to class B lies in both channels A and B. No gradient.
        With ``return_band_pixels``: ``(mask, band_pixels)``, the latter ``(N,)`` float32
        ``sum_{c,p} G[n, c, p]``.
    """
    r = _check_edge_width(edge_width)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes = {num_classes!r} is invalid; expected an int >= 1")
    y = _as_nhw(labels)
    oh, ow = (out_size, out_size) if isinstance(out_size, int) else (int(out_size[0]), int(out_size[1]))
    if oh < 1 or ow < 1:
        raise ValueError(f"out_size = {out_size!r} is invalid; expected positive sizes")
    _, h, w = y.shape
    with torch.no_grad():
        band = _edge_bands(y, num_classes, r, ignore_index, ignore_is_boundary,
                           _work_dtype(y.device))
        # Accumulated in fp32 (no fp32 copy of the band): fp16 loses integers above 2048.
        band_pixels = band.sum(dim=(1, 2, 3), dtype=torch.float32) if return_band_pixels else None
        if (oh, ow) == (h, w):
            mask = band
        elif h % oh == 0 and w % ow == 0:
            mask = F.avg_pool2d(band, (h // oh, w // ow))
        else:
            mask = F.adaptive_avg_pool2d(band, (oh, ow))
        del band
        return (mask.float(), band_pixels) if return_band_pixels else mask.float()
