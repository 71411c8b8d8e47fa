"""CIRKD: cross-image relational distillation (mini-batch + memory-based relations + pixel KD)."""
from __future__ import annotations

from typing import Any, Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .base import DistillLoss, Recorded, parse_params, resize_like
from .ifvd import resize_labels
from .kd import pixel_kd

GROUP = "cirkd"

# Settings of the CIRKD v1 code (spec §5): pixel KD 1.0 at tau 1, mini-batch
# pixel-to-pixel 1.0, memory pixel-to-pixel 0.1 and pixel-to-region 0.1, similarity
# temperature 0.1, KD-over-similarity temperature 1.0, queues of 20000 pixels / 2000
# regions per class, 16 pixels per class and image enqueued, 4096 / 1024 contrast keys.
DEFAULTS: dict[str, Any] = {
    "kd_weight": 1.0,
    "kd_tau": 1.0,
    "batch_weight": 1.0,
    "mem_pixel_weight": 0.1,
    "mem_region_weight": 0.1,
    "tau_sim": 0.1,
    "tau_kd": 1.0,
    "pixel_queue_size": 20000,
    "region_queue_size": 2000,
    "pixels_per_class": 16,
    "pixel_contrast": 4096,
    "region_contrast": 1024,
}
# kind of each key: "nonneg" number >= 0, "pos" number > 0, "int" positive int.
_KINDS = {
    "kd_weight": "nonneg", "kd_tau": "pos", "batch_weight": "nonneg", "mem_pixel_weight": "nonneg",
    "mem_region_weight": "nonneg", "tau_sim": "pos", "tau_kd": "pos", "pixel_queue_size": "int",
    "region_queue_size": "int", "pixels_per_class": "int", "pixel_contrast": "int", "region_contrast": "int",
}

# Upper bound on the elements of one similarity-logit block (rows x keys). The relation
# matrices are computed in row chunks of at most this many entries, each wrapped in
# activation checkpointing, so peak memory stays ~ a few blocks (128 MiB each in fp32)
# instead of N^2 * (h*w)^2 saved activations.
_CHUNK_ELEMS = 1 << 25


def _parse_params(params: Optional[dict]) -> dict[str, Any]:
    """Merge ``params`` over DEFAULTS, rejecting unknown keys and bad values."""
    out = parse_params(params, DEFAULTS, _KINDS, GROUP)
    if out["pixels_per_class"] > out["pixel_queue_size"]:
        raise ValueError(f"params: {GROUP}.pixels_per_class = {out['pixels_per_class']!r} is invalid; "
                         f"expected a positive int <= {GROUP}.pixel_queue_size ({out['pixel_queue_size']})")
    return out


def similarity_logits(rows: Tensor, keys: Tensor, tau: float, matmul_dtype: Optional[torch.dtype] = None) -> Tensor:
    """``rows @ keys / tau`` as fp32.

    With ``matmul_dtype`` (the run's autocast precision, bf16 or fp16) the product runs
    as autocast runs a matmul: operands ``(rows / tau)`` and ``keys`` of that type,
    accumulated in fp32 inside oneDNN / cuBLAS, the result rounded to that type; it is
    cast back to fp32, so the softmax and KL that follow stay fp32. The rows are unit
    vectors (cosines in [-1, 1], logits within +-1/tau), so nothing is lost to range.
    Why: on the demo these matmuls are ~60 % of a CIRKD step in fp32, and AMX runs bf16
    ones ~9x faster (docs/performance.md, "Mixed precision and speed").
    """
    if matmul_dtype is None:
        return torch.matmul(rows, keys) / tau
    return torch.matmul((rows / tau).to(matmul_dtype), keys.to(matmul_dtype)).float()


def _kl_rows_sum(s_rows: Tensor, s_keys: Tensor, t_rows: Tensor, t_keys: Tensor, tau: float,
                 matmul_dtype: Optional[torch.dtype] = None) -> Tensor:
    """``sum_rows KL(softmax(t_rows @ t_keys / tau) || softmax(s_rows @ s_keys / tau))``,
    softmax along the last (key) axis; ``*_keys`` is ``(C, Q)`` or ``(B, C, Q)``; the
    products as :func:`similarity_logits`."""
    log_ps = F.log_softmax(similarity_logits(s_rows, s_keys, tau, matmul_dtype), dim=-1)
    with torch.no_grad():
        log_pt = F.log_softmax(similarity_logits(t_rows, t_keys, tau, matmul_dtype), dim=-1)
    return (log_pt.exp() * (log_pt - log_ps)).sum()


def chunked_kl_sum(s_rows: Tensor, s_keys: Tensor, t_rows: Tensor, t_keys: Tensor, tau: float,
                   matmul_dtype: Optional[torch.dtype] = None) -> Tensor:
    """:func:`_kl_rows_sum` over row chunks of at most ``_CHUNK_ELEMS`` logits each.

    With more than one chunk and a student input requiring grad, every chunk is
    checkpointed (recomputed in backward), so only the inputs are kept alive.
    """
    rows = s_rows.shape[0]
    cols = max(s_keys.numel() // s_keys.shape[-2], 1)
    step = max(1, _CHUNK_ELEMS // cols)
    if rows <= step:
        return _kl_rows_sum(s_rows, s_keys, t_rows, t_keys, tau, matmul_dtype)
    use_ckpt = torch.is_grad_enabled() and (s_rows.requires_grad or s_keys.requires_grad)
    total = s_rows.new_zeros(())
    for i in range(0, rows, step):
        args = (s_rows[i:i + step], s_keys, t_rows[i:i + step], t_keys, tau, matmul_dtype)
        if use_ckpt:
            total = total + checkpoint(_kl_rows_sum, *args, use_reentrant=False)
        else:
            total = total + _kl_rows_sum(*args)
    return total


def minibatch_relation_loss(student_features: Tensor, teacher_features: Tensor, tau: float = 0.1,
                            matmul_dtype: Optional[torch.dtype] = None) -> Tensor:
    """CIRKD mini-batch pixel-to-pixel relation loss over all ordered image pairs.

    ``F`` is L2-normalised along channels; for each ordered pair ``(a, b)`` of the local
    batch ``A_ab = F_a^T F_b`` (``h*w x h*w``), and the loss is
    ``1/N^2 * sum_ab 1/(h*w) * sum_rows KL(softmax(A^T_ab/tau) || softmax(A^S_ab/tau))``.
    Channel-agnostic (no projection); the teacher map is detached and resized to the
    student's size. ``matmul_dtype``: the products' operand type (:func:`similarity_logits`).
    """
    with torch.autocast(device_type=student_features.device.type, enabled=False):
        fs = student_features.float()
        ft = resize_like(teacher_features.detach().float(), fs)
        n, _, h, w = fs.shape
        p = h * w
        fs = F.normalize(fs.flatten(2), dim=1)  # (N, C_s, P)
        ft = F.normalize(ft.flatten(2), dim=1)  # (N, C_t, P)
        # Rows of every anchor image against the pixels of every image: (N*P, C) @ (N, C, P)
        # -> (N, rows, P), softmax over each image's P pixels separately.
        s_rows = fs.transpose(1, 2).reshape(n * p, -1)
        t_rows = ft.transpose(1, 2).reshape(n * p, -1)
        total = chunked_kl_sum(s_rows, fs, t_rows, ft, tau, matmul_dtype)
        return total / (n * n * p)


def _all_gather(x: Tensor) -> Tensor:
    """Concatenate ``x`` from all processes along dim 0; identity without torch.distributed."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


class CIRKDLoss(DistillLoss):
    """Cross-image relational knowledge distillation (v1 code: mini-batch + memory + pixel KD).

    From "Cross-Image Relational Knowledge Distillation for Semantic Segmentation",
    Chuanguang Yang, Helong Zhou, Zhulin An, Xue Jiang, Yongjun Xu and Qian Zhang,
    CVPR 2022, arXiv:2204.06986.

    Terms (spec §5), each already weighted:

    * ``loss_cirkd_kd``: ``kd_weight * pixel_kd(Z^S, Z^T, kd_tau)``;
    * ``loss_cirkd_batch``: ``batch_weight * minibatch_relation_loss(F^S, F^T, tau_sim)``;
    * ``loss_cirkd_mem_pixel`` / ``loss_cirkd_mem_region``: memory-based relation losses
      ``tau_kd^2 / #anchors * sum KL(softmax(t.Q^T/(tau_sim*tau_kd)) || softmax(s.Q^T/(tau_sim*tau_kd)))``
      of every valid student pixel ``s = normalise(proj(F^S))`` (teacher ``t = normalise(F^T)``)
      against keys sampled from the class-wise pixel / region queues.

    ``proj`` (Conv1x1 C_s->C_t no bias, BN, ReLU, Conv1x1 C_t->C_t no bias) trains with the
    student's optimiser and is dropped at export. The queues ``pixel_queue (K, Qp, C_t)``,
    ``region_queue (K, Qr, C_t)`` and their per-class write pointers are **buffers**:
    they are in ``state_dict`` (saved with the training checkpoint, restored on resume)
    and never in an optimiser. They start as random unit vectors and are filled, before
    the loss is computed, with the (all-gathered, when torch.distributed is initialised)
    teacher embeddings: per image and present class, the normalised class mean (region)
    and up to ``pixels_per_class`` random pixels (pixel). Note for DDP: the enqueue is
    identical in spirit on all ranks, but the random choices differ per rank; with
    ``broadcast_buffers=True`` (DDP default) rank 0's queues overwrite the others every
    forward, which is harmless but copies the queues each step.
    """

    uses_features = True
    DEFAULTS = DEFAULTS

    def __init__(self, params: dict, num_classes: int, student_channels: int, teacher_channels: int,
                 ignore_index: int = 255) -> None:
        super().__init__(num_classes, student_channels, teacher_channels, ignore_index)
        self.params = _parse_params(params)
        p = self.params
        self.kd_weight = p["kd_weight"]
        self.kd_tau = p["kd_tau"]
        self.batch_weight = p["batch_weight"]
        self.mem_pixel_weight = p["mem_pixel_weight"]
        self.mem_region_weight = p["mem_region_weight"]
        self.tau_sim = p["tau_sim"]
        self.tau_kd = p["tau_kd"]
        self.pixel_queue_size = p["pixel_queue_size"]
        self.region_queue_size = p["region_queue_size"]
        self.pixels_per_class = p["pixels_per_class"]
        self.pixel_contrast = p["pixel_contrast"]
        self.region_contrast = p["region_contrast"]

        self.proj = nn.Sequential(
            nn.Conv2d(student_channels, teacher_channels, 1, bias=False),
            nn.BatchNorm2d(teacher_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(teacher_channels, teacher_channels, 1, bias=False),
        )
        k, c = num_classes, teacher_channels
        self.register_buffer("pixel_queue", F.normalize(torch.randn(k, self.pixel_queue_size, c), dim=2))
        self.register_buffer("pixel_queue_ptr", torch.zeros(k, dtype=torch.long))
        self.register_buffer("region_queue", F.normalize(torch.randn(k, self.region_queue_size, c), dim=2))
        self.register_buffer("region_queue_ptr", torch.zeros(k, dtype=torch.long))

    # ------------------------------------------------------------------ queues
    @torch.no_grad()
    def _enqueue(self, t_hat: Tensor, labels: Tensor) -> None:
        """Push teacher embeddings into the queues.

        Args:
            t_hat: ``(N, C_t, P)`` L2-normalised teacher features.
            labels: ``(N, P)`` long labels at feature size.
        """
        t_hat = _all_gather(t_hat)
        labels = _all_gather(labels)
        n, c, p = t_hat.shape
        k = self.num_classes
        valid = (labels >= 0) & (labels < k) & (labels != self.ignore_index)
        onehot = F.one_hot(torch.where(valid, labels, torch.zeros_like(labels)), k).to(t_hat.dtype)
        onehot = onehot * valid[..., None].to(t_hat.dtype)  # (N, P, K)
        counts = onehot.sum(dim=1)  # (N, K)
        regions = torch.bmm(onehot.transpose(1, 2), t_hat.transpose(1, 2)) / counts.clamp_min(1)[..., None]
        regions = F.normalize(regions, dim=2)  # (N, K, C)
        # Random subset of up to m pixels of each class: the m smallest uniform scores
        # among that class's pixels (non-class pixels get score 2 > any U[0,1) draw).
        m = min(self.pixels_per_class, p)
        picks = []
        for i in range(n):
            scores = torch.rand(k, p, device=t_hat.device)
            scores.masked_fill_(onehot[i].t() == 0, 2.0)
            picks.append(scores.topk(m, dim=1, largest=False).indices)  # (K, m)
        picks = torch.stack(picks)  # (N, K, m)

        # Pointer bookkeeping on the host (one sync); later writes win on collisions, as
        # with sequential writes.
        count_list = counts.long().tolist()
        ptr_p = self.pixel_queue_ptr.tolist()
        ptr_r = self.region_queue_ptr.tolist()
        qp, qr = self.pixel_queue_size, self.region_queue_size
        pixel_writes: dict[tuple[int, int], tuple[int, int, int]] = {}
        region_writes: dict[tuple[int, int], int] = {}
        for i in range(n):
            for cls in range(k):
                cnt = min(count_list[i][cls], m)
                if cnt == 0:
                    continue
                region_writes[(cls, ptr_r[cls])] = i
                ptr_r[cls] = (ptr_r[cls] + 1) % qr
                if ptr_p[cls] + cnt >= qp:
                    # Reference quirk: write to the last cnt slots and restart at 0.
                    start, ptr_p[cls] = qp - cnt, 0
                else:
                    start, ptr_p[cls] = ptr_p[cls], ptr_p[cls] + cnt
                for j in range(cnt):
                    pixel_writes[(cls, start + j)] = (i, cls, j)
        dev = t_hat.device
        if region_writes:
            dst = torch.tensor(list(region_writes.keys()), device=dev)
            src_img = torch.tensor(list(region_writes.values()), device=dev)
            self.region_queue[dst[:, 0], dst[:, 1]] = regions[src_img, dst[:, 0]].to(self.region_queue.dtype)
        if pixel_writes:
            dst = torch.tensor(list(pixel_writes.keys()), device=dev)
            src = torch.tensor(list(pixel_writes.values()), device=dev)
            pix = picks[src[:, 0], src[:, 1], src[:, 2]]
            vals = t_hat[src[:, 0], :, pix]  # (W, C)
            self.pixel_queue[dst[:, 0], dst[:, 1]] = vals.to(self.pixel_queue.dtype)
        self.pixel_queue_ptr.copy_(torch.tensor(ptr_p, dtype=torch.long))
        self.region_queue_ptr.copy_(torch.tensor(ptr_r, dtype=torch.long))

    def _sample_keys(self, queue: Tensor, per_class: int) -> Tensor:
        """``K * min(per_class, Q)`` keys: the same random queue slots for every class."""
        k, q, c = queue.shape
        take = min(per_class, q)
        slots = torch.randperm(q, device=queue.device)[:take]
        return queue[:, slots].reshape(k * take, c)

    def _memory_loss(self, s_anchor: Tensor, t_anchor: Tensor, keys: Tensor,
                     matmul_dtype: Optional[torch.dtype]) -> Tensor:
        keys_t = keys.t().contiguous()  # (C, Q), no grad (a buffer copy)
        total = chunked_kl_sum(s_anchor, keys_t, t_anchor, keys_t, self.tau_sim * self.tau_kd, matmul_dtype)
        return self.tau_kd ** 2 * total / s_anchor.shape[0]

    # ------------------------------------------------------------------ forward
    def forward(self, student: Recorded, teacher: Recorded, labels: Tensor) -> dict[str, Tensor]:
        if student.features is None or teacher.features is None:
            raise ValueError("CIRKDLoss needs decode features of both student and teacher (uses_features=True)")
        device = student.logits.device.type
        # The relation products follow the run's precision (similarity_logits); the rest is fp32.
        matmul_dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
        with torch.autocast(device_type=device, enabled=False):
            zs = student.logits.float()
            zt = resize_like(teacher.logits.detach().float(), zs)
            fs = student.features.float()
            ft = resize_like(teacher.features.detach().float(), fs)
            zero = zs.new_zeros(())

            kd = pixel_kd(zs, zt, self.kd_tau) if self.kd_weight > 0 else zero
            batch = minibatch_relation_loss(fs, ft, self.tau_sim, matmul_dtype) if self.batch_weight > 0 else zero

            mem_pixel, mem_region = zero, zero
            if self.mem_pixel_weight > 0 or self.mem_region_weight > 0:
                y = resize_labels(labels.to(fs.device), tuple(fs.shape[-2:])).flatten(1)  # (N, P)
                s_hat = F.normalize(self.proj(fs).flatten(2), dim=1)  # (N, C_t, P)
                t_hat = F.normalize(ft.flatten(2), dim=1)  # (N, C_t, P)
                self._enqueue(t_hat, y)
                valid = ((y >= 0) & (y < self.num_classes) & (y != self.ignore_index)).flatten()
                c_t = s_hat.shape[1]
                s_anchor = s_hat.transpose(1, 2).reshape(-1, c_t)[valid]
                t_anchor = t_hat.transpose(1, 2).reshape(-1, c_t)[valid]
                if s_anchor.shape[0] == 0:
                    # No valid pixel: zero that keeps the projection head in the graph.
                    mem_pixel = mem_region = 0.0 * s_hat.pow(2).sum()
                else:
                    k = self.num_classes
                    if self.mem_pixel_weight > 0:
                        keys = self._sample_keys(self.pixel_queue, self.pixel_contrast // k + 1)
                        mem_pixel = self._memory_loss(s_anchor, t_anchor, keys, matmul_dtype)
                    if self.mem_region_weight > 0:
                        keys = self._sample_keys(self.region_queue, self.region_contrast // k + 1)
                        mem_region = self._memory_loss(s_anchor, t_anchor, keys, matmul_dtype)
        return {
            "loss_cirkd_kd": self.kd_weight * kd,
            "loss_cirkd_batch": self.batch_weight * batch,
            "loss_cirkd_mem_pixel": self.mem_pixel_weight * mem_pixel,
            "loss_cirkd_mem_region": self.mem_region_weight * mem_region,
        }
