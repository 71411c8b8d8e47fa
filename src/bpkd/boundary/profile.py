"""Error rate, prediction entropy and KL to the teacher against distance to a boundary.

BPKD's argument (Liu et al., "BPKD: Boundary Privileged Knowledge Distillation for
Semantic Segmentation", WACV 2024, arXiv:2306.08075, abstract and Figure 1) is that a
compact network is most uncertain near the edges between classes. This measures it:
every valid pixel of the validation labels gets a *distance* ``d``, and per distance
bin the profile gives

* ``error``: the share of the bin's pixels whose predicted class is not the label;
* ``entropy``: the mean entropy ``-sum_k p_k ln p_k`` of the model's softmax (nats;
  ``ln K`` is a uniform guess);
* ``kl_to_teacher`` (students): the mean ``KL(p^T || p^S) = sum_k p^T_k (ln p^T_k - ln p^S_k)``
  (nats), the teacher as the target, the direction of pixel-wise KD.

Distance, in pixels of the evaluated label map, is the geometry of the evaluation's
edge band (:func:`bpkd.distill.masks.edge_body_masks`): a pixel is at distance ``d``
when the smallest ``(2r+1) x (2r+1)`` window around it that holds another valid class
has ``r = d + 1`` (Chebyshev distance to the nearest pixel of another class, minus
one). So bin 0 is the pixels touching another class, and the evaluation's band of
radius ``r`` is bins ``0 .. r-1``. Ignore pixels are in no bin and create no
boundary. Pixels farther than ``max_distance`` are the ``interior`` bin.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..distill.masks import edge_body_masks

INTERIOR = "interior"


def distance_to_boundary(label: Tensor, max_distance: int, ignore_index: int = 255) -> Tensor:
    """``(H, W)`` int64: each valid pixel's distance ``0 .. max_distance``, ``max_distance + 1``
    for the interior, ``-1`` for ignore pixels."""
    if isinstance(max_distance, bool) or not isinstance(max_distance, int) or max_distance < 0:
        raise ValueError(f"max_distance = {max_distance!r}; expected an int >= 0")
    y = label.long()[None]
    dist = torch.full(label.shape, max_distance + 1, dtype=torch.long)
    for d in range(max_distance, -1, -1):  # nearest first wins: assign from far to near
        edge, _ = edge_body_masks(y, d + 1, ignore_index)
        dist[edge[0]] = d
    dist[label == ignore_index] = -1
    return dist


class BoundaryProfile:
    """Accumulates the per-bin sums over images; :meth:`bins` gives the means."""

    def __init__(self, max_distance: int, num_classes: int, ignore_index: int = 255) -> None:
        self.max_distance, self.num_classes, self.ignore_index = max_distance, num_classes, ignore_index
        n = max_distance + 2  # distances 0 .. max_distance, then the interior
        self.pixels = torch.zeros(n, dtype=torch.float64)
        self.errors = torch.zeros(n, dtype=torch.float64)
        self.entropy = torch.zeros(n, dtype=torch.float64)
        self.kl = torch.zeros(n, dtype=torch.float64)
        self.has_teacher = None

    def add(self, label: Tensor, logits: Tensor, teacher_logits: Tensor | None = None,
            distance: Tensor | None = None) -> None:
        """One image: ``label`` ``(H, W)``, ``logits`` ``(K, H, W)`` at label resolution
        (the teacher's too, for the KL); ``distance`` from :func:`distance_to_boundary`
        when the caller shares it between models."""
        if logits.shape != (self.num_classes, *label.shape):
            raise ValueError(f"logits of shape {tuple(logits.shape)}; expected ({self.num_classes}, "
                             f"{label.shape[0]}, {label.shape[1]}) for this label map")
        if self.has_teacher is None:
            self.has_teacher = teacher_logits is not None
        elif self.has_teacher != (teacher_logits is not None):
            raise ValueError("BoundaryProfile.add: every image needs teacher logits, or none does")
        if distance is None:
            distance = distance_to_boundary(label, self.max_distance, self.ignore_index)
        valid = distance >= 0
        bins = distance[valid]
        log_p = torch.log_softmax(logits.double(), dim=0)[:, valid]  # (K, n)
        p = log_p.exp()
        wrong = (log_p.argmax(0) != label[valid].long()).double()
        entropy = -(p * log_p).sum(0)
        n = self.max_distance + 2
        self.pixels += torch.bincount(bins, minlength=n).double()
        self.errors += torch.bincount(bins, weights=wrong, minlength=n)
        self.entropy += torch.bincount(bins, weights=entropy, minlength=n)
        if teacher_logits is not None:
            log_t = torch.log_softmax(teacher_logits.double(), dim=0)[:, valid]
            kl = (log_t.exp() * (log_t - log_p)).sum(0)
            self.kl += torch.bincount(bins, weights=kl, minlength=n)

    def bins(self, paper_px_per_px: float = 1.0) -> list[dict]:
        """One dict per bin: ``distance`` (px of the labels, or ``"interior"``),
        ``distance_paper_px`` (that distance at the paper's resolution), ``pixels``,
        ``error`` (share, 0-1), ``entropy`` and, for students, ``kl_to_teacher`` (nats).
        A bin without pixels has ``None`` statistics."""
        out = []
        for i in range(self.max_distance + 2):
            interior = i == self.max_distance + 1
            count = int(self.pixels[i])
            row = {"distance": INTERIOR if interior else i,
                   "distance_paper_px": INTERIOR if interior else round(i * paper_px_per_px, 2),
                   "pixels": count}

            def mean(total: Tensor):
                return round(float(total[i]) / count, 6) if count else None

            row.update(error=mean(self.errors), entropy=mean(self.entropy))
            if self.has_teacher:
                row["kl_to_teacher"] = mean(self.kl)
            out.append(row)
        return out
