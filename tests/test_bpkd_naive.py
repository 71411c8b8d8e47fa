"""BPKD's loss recomputed naively: plain Python loops over pixels and classes, in float64,
from the formulas of the paper (Liu et al., "BPKD: Boundary Privileged Knowledge
Distillation For Semantic Segmentation", WACV 2024, arXiv:2306.08075, Figure 3) as
``BPKDLoss``'s docstring states them, on real label maps (several classes, an ignore
region, boundaries at the frame's edge). Nothing of the project's code is used for the
expectation: not its band mask, its pooling, its softmax or CWD. Every ``edge_norm``
and ``mask_mode`` must agree with ``BPKDLoss`` in value and in the gradient on the
student's logits (that one by central differences of the naive loss)."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from bpkd.distill.losses.base import Recorded
from bpkd.distill.losses.bpkd import EDGE_NORMS, BPKDLoss
from test_losses_bpkd_cwd import _kl  # KL(softmax(p / tau) || softmax(q / tau)) of two lists, math only

IGNORE = 255
N, K, H, W, STRIDE, RADIUS = 2, 3, 8, 12, 2, 1
h, w = H // STRIDE, W // STRIDE
PARAMS = dict(edge_weight=50.0, body_weight=20.0, alpha=2.0, edge_tau=4.0, body_tau=1.5, edge_width=RADIUS)


def _labels() -> list[list[list[int]]]:
    """Two label maps: three classes meeting along a vertical line, a diagonal and a
    block, with an ignore strip (no band may come from it) in the first image."""
    maps = []
    for n in range(N):
        rows = []
        for i in range(H):
            row = []
            for j in range(W):
                if n == 0:
                    c = 0 if j < 5 else (1 if i + j < 13 else 2)
                    if i >= 6 and j < 3:
                        c = IGNORE
                else:
                    c = 2 if (2 <= i < 6 and 3 <= j < 9) else (1 if j >= 7 else 0)
                row.append(c)
            rows.append(row)
        maps.append(rows)
    return maps


def _band(labels) -> list:
    """G[n][c][y][x]: 1 when pixel (y, x) is valid and its (2r+1)^2 window, clipped to the
    frame, holds a valid pixel of class c and a valid pixel of another class."""
    g = [[[[0] * W for _ in range(H)] for _ in range(K)] for _ in range(N)]
    for n, c, y, x in itertools.product(range(N), range(K), range(H), range(W)):
        if labels[n][y][x] == IGNORE:
            continue
        window = [labels[n][yy][xx] for yy in range(max(0, y - RADIUS), min(H, y + RADIUS + 1))
                  for xx in range(max(0, x - RADIUS), min(W, x + RADIUS + 1))]
        valid = [v for v in window if v != IGNORE]
        if c in valid and any(v != c for v in valid):
            g[n][c][y][x] = 1
    return g


def _mask(g) -> list:
    """M_E[n][c][i][j]: the mean of G over the stride x stride block of logit cell (i, j)."""
    return [[[[sum(g[n][c][i * STRIDE + a][j * STRIDE + b] for a in range(STRIDE) for b in range(STRIDE))
               / STRIDE**2 for j in range(w)] for i in range(h)] for c in range(K)] for n in range(N)]


def naive_bpkd(s, t, g, m, edge_norm: str, mask_mode: str) -> tuple[float, float]:
    """(edge_weight L_E, body_weight L_B) of nested lists s, t[n][c][i][j], float64."""
    tau_e, tau_b, alpha = PARAMS["edge_tau"], PARAMS["body_tau"], PARAMS["alpha"]
    # phi[n][i][j]: tau_E^2 KL over the classes at one logit cell.
    phi = [[[0.0] * w for _ in range(h)] for _ in range(N)]
    for n, i, j in itertools.product(range(N), range(h), range(w)):
        if mask_mode == "multiply":  # masked logits Z * M_E, every class in the softmax
            zt = [t[n][c][i][j] * m[n][c][i][j] for c in range(K)]
            zs = [s[n][c][i][j] * m[n][c][i][j] for c in range(K)]
        else:  # exclude: only the classes whose band touches the cell, raw logits
            kept = [c for c in range(K) if m[n][c][i][j] > 0]
            zt = [t[n][c][i][j] for c in kept]
            zs = [s[n][c][i][j] for c in kept]
        phi[n][i][j] = tau_e**2 * _kl(zt, zs, tau_e) if zt else 0.0
    # S[n][c] = alpha sum_i phi M_E, then "Sum / Mask Pixels" as each reading counts them.
    weighted = [[alpha * sum(phi[n][i][j] * m[n][c][i][j] for i in range(h) for j in range(w))
                 for c in range(K)] for n in range(N)]
    cells = [[sum(1 for i in range(h) for j in range(w) if m[n][c][i][j] > 0) for c in range(K)] for n in range(N)]
    mass = [[sum(m[n][c][i][j] for i in range(h) for j in range(w)) for c in range(K)] for n in range(N)]
    if edge_norm in ("per_class", "per_class_mass"):
        count = cells if edge_norm == "per_class" else mass
        edge = sum(weighted[n][c] / count[n][c] for n in range(N) for c in range(K) if count[n][c] > 0) / N
    else:
        total = {"mask_mass": sum(map(sum, mass)), "mask_cells": sum(map(sum, cells)), "frame": N * h * w,
                 "gt_pixels": sum(g[n][c][y][x] for n, c, y, x in itertools.product(range(N), range(K), range(H),
                                                                                      range(W)))}[edge_norm]
        edge = sum(map(sum, weighted)) / total if total > 0 else 0.0
    # Body: per image and class channel, KL of the softmaxes over the positions.
    body = 0.0
    for n, c in itertools.product(range(N), range(K)):
        positions = [(i, j) for i in range(h) for j in range(w)]
        if mask_mode == "multiply":  # Z (1 - M_E), every position
            zt = [t[n][c][i][j] * (1 - m[n][c][i][j]) for i, j in positions]
            zs = [s[n][c][i][j] * (1 - m[n][c][i][j]) for i, j in positions]
        else:  # exclude: the positions outside the class's band only
            zt = [t[n][c][i][j] for i, j in positions if m[n][c][i][j] == 0]
            zs = [s[n][c][i][j] for i, j in positions if m[n][c][i][j] == 0]
        body += tau_b**2 * _kl(zt, zs, tau_b) if zt else 0.0
    body /= N * K
    return PARAMS["edge_weight"] * edge, PARAMS["body_weight"] * body


@pytest.fixture(scope="module")
def case():
    gen = torch.Generator().manual_seed(0)
    s = torch.randn(N, K, h, w, generator=gen, dtype=torch.float64) * 2
    t = torch.randn(N, K, h, w, generator=gen, dtype=torch.float64) * 2
    labels = _labels()
    g = _band(labels)
    return s, t, labels, g, _mask(g)


def test_the_label_maps_have_bands_of_every_class_and_ignore_that_makes_none(case):
    _, _, labels, g, m = case
    assert {v for img in labels for row in img for v in row} == {0, 1, 2, IGNORE}
    assert all(sum(map(sum, g[n][c])) > 0 for n in range(N) for c in range(K))
    # The ignore strip (rows 6-7, columns 0-2 of image 0) touches class 0 and makes no band:
    # class 0's band there comes from class 1 only, three columns away.
    assert all(g[0][c][y][x] == 0 for c in range(K) for y in (6, 7) for x in range(3))
    # Soft cells: a block half in a band.
    assert any(0 < m[n][c][i][j] < 1 for n, c, i, j in itertools.product(range(N), range(K), range(h), range(w)))


@pytest.mark.parametrize("mask_mode", ["multiply", "exclude"])
@pytest.mark.parametrize("edge_norm", EDGE_NORMS)
def test_bpkd_loss_is_the_formula_in_value_and_gradient(case, edge_norm, mask_mode):
    s, t, labels, g, m = case
    loss = BPKDLoss(dict(PARAMS, edge_norm=edge_norm, mask_mode=mask_mode), num_classes=K, student_channels=4,
                    teacher_channels=4, ignore_index=IGNORE)
    student = s.clone().requires_grad_(True)
    out = loss(Recorded(student), Recorded(t), torch.tensor(labels))
    edge, body = naive_bpkd(s.tolist(), t.tolist(), g, m, edge_norm, mask_mode)
    assert edge > 0 and body > 0
    assert out["loss_bpkd_edge"].item() == pytest.approx(edge, rel=1e-6)
    assert out["loss_bpkd_body"].item() == pytest.approx(body, rel=1e-6)

    (grad,) = torch.autograd.grad(out["loss_bpkd_edge"] + out["loss_bpkd_body"], student)
    eps = 1e-5
    expected = torch.zeros_like(s)
    for index in itertools.product(range(N), range(K), range(h), range(w)):
        plus, minus = s.clone(), s.clone()
        plus[index] += eps
        minus[index] -= eps
        expected[index] = (sum(naive_bpkd(plus.tolist(), t.tolist(), g, m, edge_norm, mask_mode))
                           - sum(naive_bpkd(minus.tolist(), t.tolist(), g, m, edge_norm, mask_mode))) / (2 * eps)
    scale = expected.abs().max().item()
    assert scale > 0
    assert (grad - expected).abs().max().item() <= 1e-5 * scale, (edge_norm, mask_mode)
