"""CWD and BPKD losses: hand-computed values, zero at identity, gradient flow, params."""
from __future__ import annotations

import math

import pytest
import torch

from bpkd.distill.losses import PARAM_GROUPS, Recorded, build_method
from bpkd.distill.losses.bpkd import EDGE_NORMS, BPKDLoss
from bpkd.distill.losses.cwd import CWDLoss, channel_wise_divergence

IGN = 255
DIMS = dict(student_channels=8, teacher_channels=16, ignore_index=IGN)


def _kl(t: list[float], s: list[float], tau: float) -> float:
    """KL(softmax(t/tau) || softmax(s/tau)) of two plain lists, with math only."""
    zt = sum(math.exp(v / tau) for v in t)
    zs = sum(math.exp(v / tau) for v in s)
    total = 0.0
    for a, b in zip(t, s):
        p = math.exp(a / tau) / zt
        q = math.exp(b / tau) / zs
        total += p * (math.log(p) - math.log(q))
    return total


def _cwd_by_hand(s: torch.Tensor, t: torch.Tensor, tau: float) -> float:
    """CWD of two ``(N, C, h, w)`` tensors with math only: per image and channel, the KL
    of the spatial softmaxes at ``tau``, times tau^2, averaged over N * C."""
    n, c = s.shape[:2]
    total = sum(_kl(t[i, k].flatten().tolist(), s[i, k].flatten().tolist(), tau) for i in range(n) for k in range(c))
    return tau**2 * total / (n * c)


def _logits(rows: list[list[float]]) -> torch.Tensor:
    """``(1, K, 1, W)`` logits from K rows of W values."""
    return torch.tensor(rows, dtype=torch.float32)[None, :, None, :]


def _bpkd(num_classes: int, **params) -> BPKDLoss:
    return BPKDLoss(params, num_classes=num_classes, **DIMS)


# ----------------------------------------------------------------------------- CWD


def test_cwd_by_hand_tau1():
    s = _logits([[1.0, 2.0], [0.5, -0.5]])  # N=1, C=2, 1x2 positions
    t = _logits([[2.0, 0.0], [0.0, 1.0]])
    # channel 0: teacher softmax over positions of (2, 0), student of (1, 2)
    pt0 = [math.exp(2) / (math.exp(2) + 1), 1 / (math.exp(2) + 1)]
    ps0 = [math.exp(1) / (math.exp(1) + math.exp(2)), math.exp(2) / (math.exp(1) + math.exp(2))]
    kl0 = sum(p * math.log(p / q) for p, q in zip(pt0, ps0))
    pt1 = [1 / (1 + math.e), math.e / (1 + math.e)]
    z1 = math.exp(0.5) + math.exp(-0.5)
    ps1 = [math.exp(0.5) / z1, math.exp(-0.5) / z1]
    kl1 = sum(p * math.log(p / q) for p, q in zip(pt1, ps1))
    expected = (kl0 + kl1) / 2  # tau^2 = 1, divided by N*C = 2
    assert channel_wise_divergence(s, t, 1.0).item() == pytest.approx(expected, rel=1e-5)
    assert (kl0, kl1) == (pytest.approx(0.828725, abs=1e-6), pytest.approx(0.462117, abs=1e-6))
    assert expected == pytest.approx(0.645421, abs=1e-6)


def test_cwd_tau_and_weight():
    s = _logits([[1.0, 2.0], [0.5, -0.5]])
    t = _logits([[2.0, 0.0], [0.0, 1.0]])
    expected = 4.0 * (_kl([2, 0], [1, 2], 2.0) + _kl([0, 1], [0.5, -0.5], 2.0)) / 2
    assert channel_wise_divergence(s, t, 2.0).item() == pytest.approx(expected, rel=1e-5)
    loss = CWDLoss({"tau": 2.0, "weight": 5}, num_classes=2, **DIMS)
    out = loss(Recorded(s), Recorded(t), torch.zeros((1, 1, 2), dtype=torch.long))
    assert set(out) == {"loss_cwd"}
    assert out["loss_cwd"].item() == pytest.approx(5 * expected, rel=1e-5)


def test_cwd_defaults_are_paper_values_and_batch_normalisation():
    loss = CWDLoss({}, num_classes=2, **DIMS)
    assert (loss.weight, loss.tau) == (3.0, 4.0)
    s = _logits([[1.0, 2.0], [0.5, -0.5]])
    t = _logits([[2.0, 0.0], [0.0, 1.0]])
    one = channel_wise_divergence(s, t, 4.0)
    # tau = 4 by hand: 16 x (KL of channel 0 + KL of channel 1) / (N * C = 2)
    by_hand = 16 * (_kl([2, 0], [1, 2], 4.0) + _kl([0, 1], [0.5, -0.5], 4.0)) / 2
    assert by_hand == pytest.approx(0.798361, abs=1e-6)
    assert one.item() == pytest.approx(by_hand, rel=1e-5)
    # the same image twice: sum doubles, N*C doubles -> unchanged
    two = channel_wise_divergence(torch.cat([s, s]), torch.cat([t, t]), 4.0)
    assert two.item() == pytest.approx(one.item(), rel=1e-6)
    out = loss(Recorded(s), Recorded(t), torch.zeros((1, 1, 2), dtype=torch.long))
    assert out["loss_cwd"].item() == pytest.approx(3 * one.item(), rel=1e-6)


def test_cwd_resizes_teacher_to_student():
    gen = torch.Generator().manual_seed(0)
    s = torch.randn(2, 3, 4, 4, generator=gen)
    t = torch.randn(2, 3, 8, 8, generator=gen)
    loss = CWDLoss({"tau": 1.0, "weight": 1.0}, num_classes=3, **DIMS)
    out = loss(Recorded(s), Recorded(t), torch.zeros((2, 32, 32), dtype=torch.long))
    # Halving 8x8 bilinearly (align_corners=False) samples source coordinate 2i + 0.5:
    # the mean of each 2x2 block. Written out here, not through the code's resize: a
    # nearest or align_corners=True resize gives another teacher and another value.
    blocks = t.reshape(2, 3, 4, 2, 4, 2).mean(dim=(3, 5))
    assert out["loss_cwd"].item() == pytest.approx(_cwd_by_hand(s, blocks, 1.0), rel=1e-5)
    assert out["loss_cwd"].item() != pytest.approx(_cwd_by_hand(s, t[:, :, ::2, ::2], 1.0), rel=1e-3)


# ----------------------------------------------------------------------------- BPKD


def test_bpkd_binary_mask_by_hand():
    # labels = logit size; r = 1 -> M_E = [0, 0, 1, 1] in both class channels
    labels = torch.tensor([[[0, 0, 0, 1]]])
    s = [[0.3, -1.0, 1.2, 0.4], [0.0, 0.8, -0.5, 2.0]]
    t = [[1.0, 0.5, -0.7, 1.5], [-0.2, 0.1, 0.9, -1.1]]
    tau, alpha = 2.0, 2.0
    loss = _bpkd(2, edge_tau=tau, body_tau=tau, edge_width=1, edge_norm="per_class")
    out = loss(Recorded(_logits(s)), Recorded(_logits(t)), labels)
    assert set(out) == {"loss_bpkd_edge", "loss_bpkd_body"}
    # edge: per-pixel KL over the 2 classes at pixels 2 and 3 (pixels 0, 1 have all-zero logits: phi = 0)
    phi = [tau**2 * _kl([t[0][i], t[1][i]], [s[0][i], s[1][i]], tau) for i in (2, 3)]
    # post-mask: each class has n_c = 2 masked pixels, weight alpha / 2, summed over 2 classes
    l_edge = 2 * (alpha / 2) * (phi[0] + phi[1])
    assert out["loss_bpkd_edge"].item() == pytest.approx(50.0 * l_edge, rel=1e-5)
    # body: CWD of the logits with edge positions zeroed, tau^2 / (N*K)
    body_s = [[v if i < 2 else 0.0 for i, v in enumerate(row)] for row in s]
    body_t = [[v if i < 2 else 0.0 for i, v in enumerate(row)] for row in t]
    l_body = tau**2 / 2 * sum(_kl(body_t[c], body_s[c], tau) for c in range(2))
    assert out["loss_bpkd_body"].item() == pytest.approx(20.0 * l_body, rel=1e-5)

    # exclude mode: same edge (both classes kept), body softmax over pixels 0 and 1 only
    loss = _bpkd(2, edge_tau=tau, body_tau=tau, edge_width=1, edge_norm="per_class", mask_mode="exclude")
    out = loss(Recorded(_logits(s)), Recorded(_logits(t)), labels)
    assert out["loss_bpkd_edge"].item() == pytest.approx(50.0 * l_edge, rel=1e-5)
    l_body_ex = tau**2 / 2 * sum(_kl(t[c][:2], s[c][:2], tau) for c in range(2))
    assert out["loss_bpkd_body"].item() == pytest.approx(20.0 * l_body_ex, rel=1e-5)


def test_bpkd_soft_mask_count_vs_mass_by_hand():
    # 8 label columns -> 4 logit columns; the band (label cols 5, 6) gives M_E = [0, 0, .5, .5]
    labels = torch.tensor([[[0, 0, 0, 0, 0, 0, 1, 1]]])
    s = [[0.3, -1.0, 1.2, 0.4], [0.0, 0.8, -0.5, 2.0]]
    t = [[1.0, 0.5, -0.7, 1.5], [-0.2, 0.1, 0.9, -1.1]]
    tau, alpha = 1.0, 2.0
    # pre-mask: Z * M_E halves the logits at pixels 2 and 3 (pixels 0, 1 are all-zero: phi = 0)
    phi = [_kl([0.5 * t[0][i], 0.5 * t[1][i]], [0.5 * s[0][i], 0.5 * s[1][i]], tau) for i in (2, 3)]
    # sum_i phi_i * M_E = 0.5 * (phi_2 + phi_3) for each class
    l_count = 2 * (alpha / 2) * 0.5 * (phi[0] + phi[1])  # n_c = #{M_E > 0} = 2
    l_mass = 2 * (alpha / 1) * 0.5 * (phi[0] + phi[1])  # n_c = sum M_E = 1
    body_s = [[row[0], row[1], 0.5 * row[2], 0.5 * row[3]] for row in s]
    body_t = [[row[0], row[1], 0.5 * row[2], 0.5 * row[3]] for row in t]
    l_body = sum(_kl(body_t[c], body_s[c], tau) for c in range(2)) / 2
    for norm, l_edge in (("per_class", l_count), ("per_class_mass", l_mass)):
        loss = _bpkd(2, edge_tau=tau, body_tau=tau, edge_width=1, edge_norm=norm, edge_weight=1.0, body_weight=1.0)
        out = loss(Recorded(_logits(s)), Recorded(_logits(t)), labels)
        assert out["loss_bpkd_edge"].item() == pytest.approx(l_edge, rel=1e-5)
        assert out["loss_bpkd_body"].item() == pytest.approx(l_body, rel=1e-5)
    # exclude: edge softmax on the raw (not halved) logits, still weighted by M_E = 0.5
    phi_raw = [_kl([t[0][i], t[1][i]], [s[0][i], s[1][i]], tau) for i in (2, 3)]
    loss = _bpkd(2, edge_tau=tau, body_tau=tau, edge_width=1, edge_norm="per_class", mask_mode="exclude",
                 edge_weight=1.0, body_weight=1.0)
    out = loss(Recorded(_logits(s)), Recorded(_logits(t)), labels)
    assert out["loss_bpkd_edge"].item() == pytest.approx(2 * (alpha / 2) * 0.5 * sum(phi_raw), rel=1e-5)
    l_body_ex = sum(_kl(t[c][:2], s[c][:2], tau) for c in range(2)) / 2
    assert out["loss_bpkd_body"].item() == pytest.approx(l_body_ex, rel=1e-5)


def test_bpkd_per_class_normalisation_and_exclusion_by_hand():
    # K = 3, r = 1: M_E rows are [0,1,1,0,0,0], [0,1,1,1,1,0], [0,0,0,1,1,0]
    labels = torch.tensor([[[0, 0, 1, 1, 2, 2]]])
    s = [[0.2, 1.0, -0.4, 0.7, 0.0, 1.1], [0.5, -0.3, 0.8, 0.1, -1.0, 0.4], [1.3, 0.6, 0.0, -0.8, 0.9, -0.2]]
    t = [[-0.5, 0.4, 1.0, 0.2, 0.6, 0.0], [0.9, 1.2, -0.6, 0.3, 0.7, -0.4], [0.1, -0.9, 0.5, 1.4, -0.2, 0.8]]
    masks = [[0, 1, 1, 0, 0, 0], [0, 1, 1, 1, 1, 0], [0, 0, 0, 1, 1, 0]]
    tau, alpha = 1.0, 2.0

    def edge_loss(phi: list[float]) -> float:
        total = 0.0
        for c in range(3):
            n_c = sum(1 for m in masks[c] if m > 0)
            total += alpha / n_c * sum(phi[i] * masks[c][i] for i in range(6))
        return total

    # multiply: masked class channels get logit 0 at the pixel
    phi_mul = [_kl([t[c][i] * masks[c][i] for c in range(3)], [s[c][i] * masks[c][i] for c in range(3)], tau)
               for i in range(6)]
    body_mul = sum(_kl([t[c][i] * (1 - masks[c][i]) for i in range(6)],
                       [s[c][i] * (1 - masks[c][i]) for i in range(6)], tau) for c in range(3)) / 3
    out = _bpkd(3, edge_tau=tau, body_tau=tau, edge_width=1, edge_norm="per_class", edge_weight=1.0, body_weight=1.0)(
        Recorded(_logits(s)), Recorded(_logits(t)), labels)
    assert out["loss_bpkd_edge"].item() == pytest.approx(edge_loss(phi_mul), rel=1e-5)
    assert out["loss_bpkd_body"].item() == pytest.approx(body_mul, rel=1e-5)

    # exclude: pixel 1 and 2 compare classes {0, 1}; pixels 3 and 4 classes {1, 2}
    phi_ex = [0.0] * 6
    for i, kept in ((1, (0, 1)), (2, (0, 1)), (3, (1, 2)), (4, (1, 2))):
        phi_ex[i] = _kl([t[c][i] for c in kept], [s[c][i] for c in kept], tau)
    body_pos = [(0, 3, 4, 5), (0, 5), (0, 1, 2, 5)]  # positions with M_E == 0 per channel
    body_ex = sum(_kl([t[c][i] for i in body_pos[c]], [s[c][i] for i in body_pos[c]], tau)
                  for c in range(3)) / 3
    out = _bpkd(3, edge_tau=tau, body_tau=tau, edge_width=1, edge_norm="per_class", edge_weight=1.0, body_weight=1.0,
                mask_mode="exclude")(
        Recorded(_logits(s)), Recorded(_logits(t)), labels)
    assert out["loss_bpkd_edge"].item() == pytest.approx(edge_loss(phi_ex), rel=1e-5)
    assert out["loss_bpkd_body"].item() == pytest.approx(body_ex, rel=1e-5)


def test_bpkd_edge_norm_readings_by_hand():
    # Batch of 2, K = 2, labels 1x12 -> logits 1x3 (stride 4 along the width), r = 1.
    # Image 0: class 0 in columns 0-6, class 1 in 7-11: the GT band G holds columns 6, 7 in
    # both channels (4 ones), so M_E = [0, .5, 0] per channel. Image 1: one class, no band.
    labels = torch.tensor([[[0] * 7 + [1] * 5], [[0] * 12]])
    s = torch.tensor([[[0.3, -1.0, 1.2], [0.0, 0.8, -0.5]], [[1.0, 2.0, -1.0], [0.5, 0.2, 0.1]]])[:, :, None, :]
    t = torch.tensor([[[1.0, 0.5, -0.7], [-0.2, 0.1, 0.9]], [[-1.0, 0.3, 0.4], [2.0, -0.6, 0.0]]])[:, :, None, :]
    tau, alpha = 2.0, 2.0
    # pre-mask: only logit cell 1 of image 0 keeps (halved) logits; every other cell is all-zero
    # for both nets, so phi = 0 there (image 1 included)
    phi = tau**2 * _kl([0.5 * t[0, 0, 0, 1].item(), 0.5 * t[0, 1, 0, 1].item()],
                       [0.5 * s[0, 0, 0, 1].item(), 0.5 * s[0, 1, 0, 1].item()], tau)
    total = alpha * 2 * 0.5 * phi  # alpha * sum_{n,c} sum_i phi * M_E
    expected = {
        "per_class": total / 1 / 2,        # n_c = 1 cell per class, then 1/N with N = 2
        "per_class_mass": total / 0.5 / 2,  # n_c = 0.5 mass per class
        "mask_mass": total / 1.0,          # sum of M_E over the batch: 2 x 0.5
        "mask_cells": total / 2,           # non-zero mask cells: 1 per channel
        "frame": total / 6,                # N h w = 2 x 1 x 3
        "gt_pixels": total / 4,            # ones of G at label resolution (= 4^2/4 x mask_mass here)
    }
    assert set(expected) == set(EDGE_NORMS)
    for norm, value in expected.items():
        out = _bpkd(2, edge_tau=tau, edge_width=1, edge_norm=norm, edge_weight=1.0)(Recorded(s), Recorded(t), labels)
        assert out["loss_bpkd_edge"].item() == pytest.approx(value, rel=1e-5), norm
        # every reading leaves the body term alone
        assert out["loss_bpkd_body"].item() == pytest.approx(
            20.0 * _cwd_by_hand(s * (1 - _mask(labels)), t * (1 - _mask(labels)), 4.0), rel=1e-5)


def _mask(labels: torch.Tensor) -> torch.Tensor:
    """M_E of the readings test: 0.5 at logit cell 1 of image 0 in both channels."""
    m = torch.zeros(2, 2, 1, 3)
    m[0, :, 0, 1] = 0.5
    return m


def test_bpkd_without_any_edge_is_zero_with_zero_gradient():
    labels = torch.zeros(2, 8, 8, dtype=torch.long)  # one class: no band anywhere
    s = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    t = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    for norm in EDGE_NORMS:
        out = _bpkd(3, edge_norm=norm, body_weight=0.0)(Recorded(s), Recorded(t), labels)
        assert out["loss_bpkd_edge"].item() == 0.0
        (grad,) = torch.autograd.grad(out["loss_bpkd_edge"], s)
        assert torch.equal(grad, torch.zeros_like(grad)), norm


def test_edge_and_body_temperatures_are_separate():
    labels, s, t = _random_case()
    base = _bpkd(4, edge_tau=4.0, body_tau=4.0)(Recorded(s), Recorded(t), labels)
    edge1 = _bpkd(4, edge_tau=1.0, body_tau=4.0)(Recorded(s), Recorded(t), labels)
    body1 = _bpkd(4, edge_tau=4.0, body_tau=1.0)(Recorded(s), Recorded(t), labels)
    assert edge1["loss_bpkd_body"].item() == base["loss_bpkd_body"].item()
    assert edge1["loss_bpkd_edge"].item() != pytest.approx(base["loss_bpkd_edge"].item(), rel=1e-3)
    assert body1["loss_bpkd_edge"].item() == base["loss_bpkd_edge"].item()
    assert body1["loss_bpkd_body"].item() != pytest.approx(base["loss_bpkd_body"].item(), rel=1e-3)


def _random_case(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (2, 32, 32), generator=gen)
    labels[:, :, :10] = 1
    labels[:, 28:] = IGN
    s = torch.randn(2, 4, 8, 8, generator=gen) * 3
    t = torch.randn(2, 4, 8, 8, generator=gen) * 3
    return labels, s, t


@pytest.mark.parametrize("params", [{}, {"mask_mode": "exclude"}, {"edge_norm": "per_class_mass", "edge_tau": 1.0},
                                    *({"edge_norm": norm} for norm in EDGE_NORMS)])
def test_identical_teacher_and_student_give_zero(params):
    labels, s, _ = _random_case()
    out = BPKDLoss(params, num_classes=4, **DIMS)(Recorded(s), Recorded(s.clone()), labels)
    for value in out.values():
        assert abs(value.item()) < 1e-6
    out = CWDLoss({}, num_classes=4, **DIMS)(Recorded(s), Recorded(s.clone()), labels)
    assert abs(out["loss_cwd"].item()) < 1e-6


@pytest.mark.parametrize("make", [
    lambda: BPKDLoss({}, num_classes=4, **DIMS),
    lambda: BPKDLoss({"mask_mode": "exclude", "edge_norm": "per_class_mass"}, num_classes=4, **DIMS),
    lambda: BPKDLoss({"edge_norm": "mask_cells", "body_tau": 1.0}, num_classes=4, **DIMS),
    lambda: CWDLoss({}, num_classes=4, **DIMS),
])
@pytest.mark.parametrize("teacher_size", [8, 16])
def test_gradients_reach_student_only(make, teacher_size):
    labels, s, _ = _random_case(1)
    gen = torch.Generator().manual_seed(5)
    student = s.clone().requires_grad_(True)
    teacher = torch.randn(2, 4, teacher_size, teacher_size, generator=gen).requires_grad_(True)
    out = make()(Recorded(student), Recorded(teacher), labels)
    total = sum(out.values())
    assert total.item() > 0
    total.backward()
    assert student.grad is not None
    assert torch.isfinite(student.grad).all() and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_bpkd_rejects_logits_with_wrong_class_count():
    labels, s, t = _random_case()
    with pytest.raises(ValueError, match="logits"):
        BPKDLoss({}, num_classes=5, **DIMS)(Recorded(s), Recorded(t), labels)


# ----------------------------------------------------------------------------- params


def test_defaults_fill_missing_keys():
    loss = BPKDLoss({"edge_tau": 1}, num_classes=4, **DIMS)
    assert (loss.edge_tau, loss.body_tau, loss.edge_weight, loss.body_weight, loss.alpha) == (1.0, 4.0, 50.0, 20.0, 2.0)
    assert (loss.edge_width, loss.edge_norm, loss.mask_mode) == (3, "gt_pixels", "multiply")
    full = BPKDLoss(dict(BPKDLoss.DEFAULTS), num_classes=4, **DIMS)
    assert (full.edge_tau, full.body_tau) == (4.0, 4.0)
    assert CWDLoss(None, num_classes=4, **DIMS).weight == 3.0


def test_registry_builds_both_methods_with_their_groups():
    assert PARAM_GROUPS["bpkd"] == "loss" and PARAM_GROUPS["cwd"] == "cwd"
    assert isinstance(build_method("bpkd", {"edge_weight": 10}, num_classes=4, **DIMS), BPKDLoss)
    assert isinstance(build_method("cwd", {"tau": 1.0, "weight": 5.0}, num_classes=4, **DIMS), CWDLoss)


def test_unknown_keys_are_named_with_their_group():
    with pytest.raises(ValueError, match=r"loss\.edge_weigth") as err:
        BPKDLoss({"edge_weigth": 1.0}, num_classes=4, **DIMS)
    assert "edge_weight" in str(err.value) and "mask_mode" in str(err.value)
    with pytest.raises(ValueError, match=r"cwd\.temperature") as err:
        CWDLoss({"weight": 3.0, "temperature": 4.0}, num_classes=4, **DIMS)
    assert "tau" in str(err.value) and "weight" in str(err.value)


@pytest.mark.parametrize("key,value", [
    ("edge_weight", -1.0), ("body_weight", "20"), ("alpha", None), ("edge_tau", 0), ("body_tau", -4.0),
    ("edge_width", 0), ("edge_width", 2.0), ("edge_width", True),
    ("edge_norm", "sum"), ("edge_norm", None), ("mask_mode", "mask"), ("mask_mode", 1),
])
def test_invalid_bpkd_values_name_the_key(key, value):
    with pytest.raises(ValueError, match=rf"loss\.{key}") as err:
        BPKDLoss({key: value}, num_classes=4, **DIMS)
    assert repr(value) in str(err.value)


@pytest.mark.parametrize("key,value", [("weight", -0.1), ("weight", True), ("tau", 0.0), ("tau", "4")])
def test_invalid_cwd_values_name_the_key(key, value):
    with pytest.raises(ValueError, match=rf"cwd\.{key}") as err:
        CWDLoss({key: value}, num_classes=4, **DIMS)
    assert repr(value) in str(err.value)


def test_zero_weights_are_allowed():
    labels, s, t = _random_case()
    loss = BPKDLoss({"edge_weight": 0, "body_weight": 0.0}, num_classes=4, **DIMS)
    out = loss(Recorded(s), Recorded(t), labels)
    assert out["loss_bpkd_edge"].item() == 0.0 and out["loss_bpkd_body"].item() == 0.0
