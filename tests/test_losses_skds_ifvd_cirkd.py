"""Tests of the SKDS, IFVD and CIRKD distillation losses (and pixel KD / discriminator).

Numbers are worked out by hand (with ``math``) on tiny tensors; no mocks.
"""
from __future__ import annotations

import math

import pytest
import torch

from bpkd.distill.losses import cirkd as cirkd_mod
from bpkd.distill.losses.base import Recorded
from bpkd.distill.losses.cirkd import CIRKDLoss, minibatch_relation_loss
from bpkd.distill.losses.discriminator import Discriminator, generator_adv_loss, hinge_d_loss
from bpkd.distill.losses.ifvd import IFVDLoss, ifv_loss
from bpkd.distill.losses.kd import pixel_kd
from bpkd.distill.losses.skds import SKDSLoss, pairwise_similarity_loss

TINY_D = {"d_base_channels": 4}
TINY_CIRKD = {"pixel_queue_size": 10, "region_queue_size": 4, "pixels_per_class": 2,
              "pixel_contrast": 6, "region_contrast": 4}


def _softmax(v, tau=1.0):
    e = [math.exp(x / tau) for x in v]
    s = sum(e)
    return [x / s for x in e]


def _kl(p, q):
    return sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q))


# ----------------------------------------------------------------------------- pixel KD
def test_pixel_kd_by_hand():
    # N=1, K=2, 1x2 pixels, tau=2.
    s = torch.tensor([[[[1.0, 0.0]], [[0.0, 2.0]]]])  # pixel 0: (1, 0), pixel 1: (0, 2)
    t = torch.tensor([[[[0.0, 3.0]], [[1.0, 0.0]]]])  # pixel 0: (0, 1), pixel 1: (3, 0)
    tau = 2.0
    kl0 = _kl(_softmax([0.0, 1.0], tau), _softmax([1.0, 0.0], tau))
    kl1 = _kl(_softmax([3.0, 0.0], tau), _softmax([0.0, 2.0], tau))
    expected = tau ** 2 * (kl0 + kl1) / 2  # batchmean over N*h*w = 2 rows
    assert pixel_kd(s, t, tau=tau).item() == pytest.approx(expected, rel=1e-6)
    # tau = 1: pixel 0 is KL(sigmoid-pair) with swapped logits.
    p, q = _softmax([0.0, 1.0]), _softmax([1.0, 0.0])
    assert pixel_kd(s[..., :1], t[..., :1]).item() == pytest.approx(_kl(p, q), rel=1e-6)


def _upsample_2x(n: int) -> list[list[float]]:
    """The ``(2n, n)`` matrix of a bilinear 2x upsampling with align_corners=False, by hand:
    output ``o`` samples source ``o / 2 - 0.25``, clamped to ``[0, n - 1]``."""
    rows = []
    for o in range(2 * n):
        x = min(max(o / 2 - 0.25, 0.0), n - 1.0)
        lo = int(x)
        hi, frac = min(lo + 1, n - 1), x - lo
        row = [0.0] * n
        row[lo] += 1 - frac
        row[hi] += frac
        rows.append(row)
    return rows


def test_pixel_kd_resizes_teacher():
    gen = torch.Generator().manual_seed(0)
    s = torch.randn(2, 3, 4, 6, generator=gen)
    t = torch.randn(2, 3, 2, 3, generator=gen)
    # The teacher's 2x3 map upsampled to the student's 4x6, written out with the matrices
    # above (not the code's resize), then the per-pixel KL over the 3 classes, / (N h w).
    a_h, a_w = torch.tensor(_upsample_2x(2)), torch.tensor(_upsample_2x(3))
    up = a_h @ t @ a_w.T
    assert up[0, 0, 1, 1].item() == pytest.approx(
        (0.75 * (0.75 * t[0, 0, 0, 0] + 0.25 * t[0, 0, 0, 1])
         + 0.25 * (0.75 * t[0, 0, 1, 0] + 0.25 * t[0, 0, 1, 1])).item(), rel=1e-5)
    expected = sum(_kl(_softmax(up[n, :, i, j].tolist()), _softmax(s[n, :, i, j].tolist()))
                   for n in range(2) for i in range(4) for j in range(6)) / (2 * 4 * 6)
    assert pixel_kd(s, t).item() == pytest.approx(expected, rel=1e-5)
    # A nearest-neighbour teacher would be another target: the test tells them apart.
    nearest = t.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    assert pixel_kd(s, nearest).item() != pytest.approx(expected, rel=1e-3)


# ----------------------------------------------------------------------------- pair-wise
def test_pairwise_two_nodes_by_hand():
    # Student nodes (1,0) and (1,1): cosine 1/sqrt2. Teacher nodes (1,0,0), (0,1,0): cosine 0.
    fs = torch.tensor([[[[1.0, 1.0]], [[0.0, 1.0]]]])  # (1, 2, 1, 2)
    ft = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]], [[0.0, 0.0]]]])  # (1, 3, 1, 2)
    c = 1 / math.sqrt(2)
    expected = (0 + c ** 2 + c ** 2 + 0) / 4  # mean over N*M*M = 4 entries
    assert pairwise_similarity_loss(fs, ft, patch=1).item() == pytest.approx(expected, abs=1e-6)


def test_pairwise_pools_2x2_patches_with_max():
    # 2x4 map, patch 2 -> 2 nodes. Student cell maxima: (1, 0) and (0, 3) -> orthogonal.
    ch0 = torch.tensor([[1.0, -2.0, -1.0, 0.0], [0.5, -1.0, -4.0, -2.0]])
    ch1 = torch.tensor([[0.0, -1.0, 3.0, 1.0], [-3.0, -0.5, 2.0, 0.0]])
    fs = torch.stack([ch0, ch1])[None]  # (1, 2, 2, 4)
    # Teacher: (1,0,0) in the left cell, (2,0,0) in the right cell -> parallel nodes.
    ft = torch.zeros(1, 3, 2, 4)
    ft[0, 0, :, :2] = 1.0
    ft[0, 0, :, 2:] = 2.0
    # A^S = I, A^T = all ones -> squared differences 0, 1, 1, 0.
    assert pairwise_similarity_loss(fs, ft, patch=2).item() == pytest.approx(0.5, abs=1e-6)


# ----------------------------------------------------------------------------- IFVD
def _ifvd_case():
    # Labels 4x4, nearest-resized to 2x2 pick rows/cols 0 and 2 -> [[0, 0], [1, 255]].
    labels = torch.tensor([[[0, 1, 0, 1],
                            [1, 1, 1, 1],
                            [1, 0, 255, 0],
                            [0, 0, 0, 0]]])
    fs = torch.zeros(1, 2, 2, 2)
    for (i, j), v in {(0, 0): [1, 0], (0, 1): [0, 1], (1, 0): [1, 1], (1, 1): [5, -3]}.items():
        fs[0, :, i, j] = torch.tensor(v, dtype=torch.float)
    ft = torch.zeros(1, 3, 2, 2)
    for (i, j), v in {(0, 0): [1, 0, 0], (0, 1): [1, 0, 0], (1, 0): [0, 1, 0], (1, 1): [7, 7, 7]}.items():
        ft[0, :, i, j] = torch.tensor(v, dtype=torch.float)
    return fs, ft, labels


def test_ifvd_by_hand():
    fs, ft, labels = _ifvd_case()
    # Student: class-0 prototype (0.5, 0.5) -> both class-0 cosines 1/sqrt2; class 1 has one
    # pixel -> cosine 1. Teacher: class-0 prototype (1,0,0) -> cosines 1, 1; class 1 -> 1.
    # Ignore pixel contributes 0 but counts in the denominator (N*h*w = 4).
    sq = (1 / math.sqrt(2) - 1) ** 2
    assert ifv_loss(fs, ft, labels, num_classes=2).item() == pytest.approx(2 * sq / 4, abs=1e-6)
    assert ifv_loss(fs, ft, labels, num_classes=2, mean_over_valid=True).item() == pytest.approx(
        2 * sq / 3, abs=1e-6)
    loss = IFVDLoss({**TINY_D}, num_classes=2, student_channels=2, teacher_channels=3)
    z = torch.zeros(1, 2, 2, 2)
    out = loss(Recorded(z, fs), Recorded(z, ft), labels)
    assert set(out) == {"loss_ifvd_ifv", "loss_ifvd_kd", "loss_ifvd_adv"}
    assert out["loss_ifvd_ifv"].item() == pytest.approx(20.0 * 2 * sq / 4, abs=1e-5)


# ----------------------------------------------------------------------------- CIRKD relation
def test_minibatch_relation_by_hand():
    # N=1, 2 pixels. Student pixels (1,0), (0,1) -> A^S = I; teacher pixels both (1,0)
    # -> A^T all ones -> uniform rows. tau=1: each row is KL(uniform || softmax(1, 0)).
    fs = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])
    ft = torch.tensor([[[[1.0, 1.0]], [[0.0, 0.0]]]])
    row = _kl([0.5, 0.5], _softmax([1.0, 0.0]))
    expected = (row + row) / (1 * 1 * 2)  # 1/N^2 * 1/(h*w) * sum over rows
    assert minibatch_relation_loss(fs, ft, tau=1.0).item() == pytest.approx(expected, rel=1e-6)


def test_minibatch_relation_chunked_matches_unchunked(monkeypatch):
    torch.manual_seed(0)
    fs = torch.randn(2, 3, 4, 4, requires_grad=True)
    ft = torch.randn(2, 5, 4, 4)
    full = minibatch_relation_loss(fs, ft)
    (g_full,) = torch.autograd.grad(full, fs)
    monkeypatch.setattr(cirkd_mod, "_CHUNK_ELEMS", 40)  # 32 keys per row -> 1-row chunks
    chunked = minibatch_relation_loss(fs, ft)
    (g_chunked,) = torch.autograd.grad(chunked, fs)
    assert chunked.item() == pytest.approx(full.item(), rel=1e-5)
    assert torch.allclose(g_chunked, g_full, atol=1e-6)


# ----------------------------------------------------------------------------- identity -> 0
def test_identical_teacher_and_student_give_zero():
    torch.manual_seed(0)
    n, k, c, h, w = 2, 3, 4, 4, 6
    z = torch.randn(n, k, h, w)
    f = torch.randn(n, c, h, w)
    y = torch.randint(0, k, (n, 2 * h, 2 * w))
    y[:, 0] = 255
    s, t = Recorded(z, f), Recorded(z.clone(), f.clone())
    out = SKDSLoss(TINY_D, k, c, c)(s, t, y)
    assert abs(out["loss_skds_kd"].item()) < 1e-6
    assert abs(out["loss_skds_pair"].item()) < 1e-6
    out = IFVDLoss(TINY_D, k, c, c)(s, t, y)
    assert abs(out["loss_ifvd_kd"].item()) < 1e-6
    assert abs(out["loss_ifvd_ifv"].item()) < 1e-6
    out = CIRKDLoss(TINY_CIRKD, k, c, c)(s, t, y)
    assert abs(out["loss_cirkd_kd"].item()) < 1e-6
    assert abs(out["loss_cirkd_batch"].item()) < 1e-6


# ----------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("cls,params", [(SKDSLoss, TINY_D), (IFVDLoss, TINY_D), (CIRKDLoss, TINY_CIRKD)])
def test_gradients_reach_student_never_teacher(cls, params):
    torch.manual_seed(0)
    n, k, cs, ct = 2, 3, 4, 6
    zs = torch.randn(n, k, 4, 8, requires_grad=True)
    fs = torch.randn(n, cs, 4, 8, requires_grad=True)
    # Teacher at half the student's resolution with more channels.
    zt = torch.randn(n, k, 2, 4, requires_grad=True)
    ft = torch.randn(n, ct, 2, 4, requires_grad=True)
    y = torch.randint(0, k, (n, 16, 32))
    y[:, :3] = 255
    loss = cls(params, k, cs, ct)
    out = loss(Recorded(zs, fs), Recorded(zt, ft), y)
    assert all(key.startswith("loss_") for key in out)
    total = sum(out.values())
    assert torch.isfinite(total)
    total.backward()
    assert zt.grad is None and ft.grad is None
    assert zs.grad is not None and zs.grad.abs().sum() > 0
    assert fs.grad is not None and fs.grad.abs().sum() > 0
    if cls is CIRKDLoss:
        assert all(p.grad is not None for p in loss.proj.parameters())
    else:
        # The generator term never leaves gradient in D, and D's params stay trainable.
        assert all(p.grad is None for p in loss.discriminator.parameters())
        assert all(p.requires_grad for p in loss.discriminator.parameters())
        d_out = loss.discriminator_loss(zs.detach(), zt)
        (d_key,) = d_out
        assert d_key == f"loss_{cls.__name__[:-4].lower()}_d"
        d_out[d_key].backward()
        assert zt.grad is None
        assert any(p.grad is not None for p in loss.discriminator.parameters())


# ----------------------------------------------------------------------------- discriminator
def test_discriminator_small_input_and_hinge_decreases():
    torch.manual_seed(0)
    k = 5
    d = Discriminator(k, base_channels=8)
    # Real: spatially smooth maps; fake: white noise (BatchNorm removes plain shifts).
    real = torch.nn.functional.interpolate(torch.randn(2, k, 2, 4), size=(8, 16), mode="bilinear",
                                           align_corners=False) * 3
    fake = torch.randn(2, k, 8, 16)
    scores = d(fake)
    assert scores.shape == (2, 1, 1, 1)  # small-input path: padded up to one score per image
    assert d(torch.randn(2, k, 64, 128)).shape == (2, 1, 1, 5)  # normal-size path, unpadded
    opt = torch.optim.Adam(d.parameters(), lr=1e-3, betas=(0.9, 0.99))
    losses = []
    for _ in range(8):
        opt.zero_grad()
        loss = hinge_d_loss(d(real), d(fake))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_hinge_and_generator_losses_by_hand():
    real = torch.tensor([0.5, 2.0])
    fake = torch.tensor([-2.0, 0.0])
    # mean relu(1 - real) = (0.5 + 0)/2; mean relu(1 + fake) = (0 + 1)/2
    assert hinge_d_loss(real, fake).item() == pytest.approx(0.75)
    assert generator_adv_loss(fake).item() == pytest.approx(1.0)


# ----------------------------------------------------------------------------- CIRKD queues
def test_cirkd_queues_are_buffers_and_pointers_advance():
    torch.manual_seed(0)
    k, c = 3, 4
    loss = CIRKDLoss({**TINY_CIRKD, "pixel_queue_size": 5}, k, c, c)
    sd = loss.state_dict()
    for name in ("pixel_queue", "pixel_queue_ptr", "region_queue", "region_queue_ptr"):
        assert name in sd
    assert sd["pixel_queue"].shape == (k, 5, c) and sd["region_queue"].shape == (k, 4, c)
    assert all(name not in dict(loss.named_parameters()) for name in sd if "queue" in name)
    # One image, labels at feature size: classes 0 and 1 present (4 pixels each), 2 absent.
    y = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 1]]])
    z, f = torch.randn(1, k, 2, 4), torch.randn(1, c, 2, 4)
    before = loss.pixel_queue.clone()
    loss(Recorded(z, f), Recorded(z, f), y)
    assert loss.pixel_queue_ptr.tolist() == [2, 2, 0]
    assert loss.region_queue_ptr.tolist() == [1, 1, 0]
    assert torch.equal(loss.pixel_queue[2], before[2])  # absent class untouched
    assert not torch.equal(loss.pixel_queue[0, :2], before[0, :2])
    # Stored pixel keys are normalised teacher features of the right class.
    t_hat = torch.nn.functional.normalize(f.flatten(2), dim=1)[0].t()  # (8, C)
    class0 = t_hat[[0, 1, 4, 5]]
    for slot in range(2):
        assert torch.isclose(class0 @ loss.pixel_queue[0, slot], torch.tensor(1.0), atol=1e-5).any()
    region0 = torch.nn.functional.normalize(class0.mean(0), dim=0)
    assert torch.allclose(loss.region_queue[0, 0], region0, atol=1e-6)
    loss(Recorded(z, f), Recorded(z, f), y)
    assert loss.pixel_queue_ptr.tolist() == [4, 4, 0]
    # 4 + 2 >= 5: reference quirk writes the last 2 slots and restarts at 0.
    loss(Recorded(z, f), Recorded(z, f), y)
    assert loss.pixel_queue_ptr.tolist() == [0, 0, 0]
    assert loss.region_queue_ptr.tolist() == [3, 3, 0]
    # Resume: a fresh instance restores queues and pointers from the state dict.
    fresh = CIRKDLoss({**TINY_CIRKD, "pixel_queue_size": 5}, k, c, c)
    fresh.load_state_dict(loss.state_dict())
    assert torch.equal(fresh.pixel_queue, loss.pixel_queue)
    assert fresh.region_queue_ptr.tolist() == [3, 3, 0]


def test_cirkd_all_ignore_gives_zero_memory_loss():
    k, c = 3, 4
    loss = CIRKDLoss(TINY_CIRKD, k, c, c)
    y = torch.full((1, 2, 4), 255)
    out = loss(Recorded(torch.randn(1, k, 2, 4), torch.randn(1, c, 2, 4)),
               Recorded(torch.randn(1, k, 2, 4), torch.randn(1, c, 2, 4)), y)
    assert out["loss_cirkd_mem_pixel"].item() == 0.0 and out["loss_cirkd_mem_region"].item() == 0.0
    assert loss.pixel_queue_ptr.tolist() == [0, 0, 0]


# ----------------------------------------------------------------------------- params
def test_defaults():
    s = SKDSLoss({}, 3, 4, 4)
    # The CIRKD benchmark's settings (the official ones: tests/test_official_settings.py).
    assert s.params == {"kd_weight": 1.0, "kd_tau": 1.0, "kd_divergence": "kl", "kd_reduction": "pixels",
                        "pair_weight": 10.0, "pair_pool": "patch", "pair_patch": 2, "pair_fraction": 0.5,
                        "pair_detach_norm": False, "adv_loss": "hinge", "gp_weight": 10.0,
                        "adv_weight": 0.001, "d_weight": 0.1, "d_optimizer": "adam", "d_lr": 4e-4,
                        "d_betas": (0.9, 0.99), "d_momentum": 0.9, "d_weight_decay": 0.0,
                        "d_schedule": "constant", "d_poly_power": 0.9, "d_base_channels": 64}
    i = IFVDLoss({"d_base_channels": 4}, 3, 4, 4)
    assert i.params["ifv_weight"] == 20.0 and i.params["mean_over_valid"] is False
    c = CIRKDLoss({"pixel_queue_size": 20, "region_queue_size": 3}, 3, 4, 4)
    assert c.params["mem_pixel_weight"] == 0.1 and c.params["tau_sim"] == 0.1
    assert c.params["pixels_per_class"] == 16 and c.params["pixel_contrast"] == 4096


@pytest.mark.parametrize("cls,group,bad,match", [
    (SKDSLoss, "skds", {"pair_wieght": 1.0}, r"skds\.pair_wieght.*allowed keys"),
    (SKDSLoss, "skds", {"kd_weight": -1}, r"skds\.kd_weight = -1"),
    (SKDSLoss, "skds", {"kd_tau": 0}, r"skds\.kd_tau = 0 .*> 0"),
    (SKDSLoss, "skds", {"pair_patch": 1.5}, r"skds\.pair_patch = 1\.5 .*positive int"),
    (SKDSLoss, "skds", {"d_lr": "fast"}, r"skds\.d_lr = 'fast'"),
    (IFVDLoss, "ifvd", {"mean_over_valid": "yes"}, r"ifvd\.mean_over_valid = 'yes'"),
    (IFVDLoss, "ifvd", {"adv_weight": True}, r"ifvd\.adv_weight = True"),
    (IFVDLoss, "ifvd", {"foo": 1}, r"ifvd\.foo"),
    (CIRKDLoss, "cirkd", {"tau_sim": -0.1}, r"cirkd\.tau_sim = -0\.1"),
    (CIRKDLoss, "cirkd", {"pixel_queue_size": 0}, r"cirkd\.pixel_queue_size = 0"),
    (CIRKDLoss, "cirkd", {"pixel_queue_size": 8, "pixels_per_class": 9}, r"cirkd\.pixels_per_class = 9"),
    (CIRKDLoss, "cirkd", {"queue": 3}, r"cirkd\.queue"),
])
def test_invalid_params_raise(cls, group, bad, match):
    with pytest.raises(ValueError, match=match):
        cls(bad, 3, 4, 4)
