"""Edge/body masks from GT labels (bpkd.distill.masks)."""
from __future__ import annotations

import pytest
import torch

from bpkd.distill.masks import _edge_bands, edge_body_masks, soft_edge_mask

IGN = 255


def _labels(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor([rows], dtype=torch.long)


@pytest.mark.parametrize("r", [1, 2, 3])
def test_vertical_boundary_gives_band_of_2r_columns(r):
    labels = torch.full((2, 5, 16), 3, dtype=torch.long)
    labels[:, :, 8:] = 7
    edge, body = edge_body_masks(labels, edge_width=r)
    expected_cols = torch.zeros(16, dtype=torch.bool)
    expected_cols[8 - r:8 + r] = True
    assert edge.shape == body.shape == (2, 5, 16)
    assert edge.dtype == body.dtype == torch.bool
    assert torch.equal(edge, expected_cols.expand(2, 5, 16))
    assert int(edge[0, 0].sum()) == 2 * r
    assert torch.equal(body, ~edge)


def test_horizontal_boundary_and_border_create_no_extra_edge():
    labels = torch.zeros((1, 10, 4), dtype=torch.long)
    labels[:, 6:] = 1
    edge, _ = edge_body_masks(labels, edge_width=2)
    # rows 4, 5 (class 0) and 6, 7 (class 1); nothing along the image border
    assert edge[0].any(dim=1).tolist() == [False] * 4 + [True] * 4 + [False] * 2
    assert edge[0, 4:8].all()
    uniform = torch.full((1, 5, 5), 2, dtype=torch.long)
    edge, body = edge_body_masks(uniform, edge_width=3)
    assert not edge.any() and body.all()


def test_class_ignore_transition_creates_no_edge():
    labels = _labels([[0, 0, 0, IGN, IGN, IGN], [0, 0, 0, IGN, IGN, IGN]])
    edge, body = edge_body_masks(labels, edge_width=2)
    assert not edge.any()
    assert body[0].tolist() == [[True] * 3 + [False] * 3] * 2


def test_ignore_pixels_are_in_neither_mask():
    labels = torch.zeros((1, 6, 6), dtype=torch.long)
    labels[:, :, 3:] = 1
    labels[:, 2:4, 1:5] = IGN  # an ignore blob straddling the boundary
    edge, body = edge_body_masks(labels, edge_width=1)
    ignore = labels == IGN
    assert not (edge & ignore).any()
    assert not (body & ignore).any()
    # rows 0, 1, 4, 5 keep the 2-column band (cols 2, 3) where the window sees both classes
    assert edge[0, 0].tolist() == [False, False, True, True, False, False]
    # row 2: col 0 (class 0) and col 5 (class 1) are 5 columns apart -> no edge
    assert not edge[0, 2].any()


def test_valid_classes_across_a_thin_ignore_strip():
    labels = _labels([[0, IGN, 1]])
    edge, body = edge_body_masks(labels, edge_width=1)
    assert edge[0, 0].tolist() == [False, False, False]
    assert body[0, 0].tolist() == [True, False, True]
    edge, body = edge_body_masks(labels, edge_width=2)
    assert edge[0, 0].tolist() == [True, False, True]
    assert not body.any()


def test_partition_on_a_random_map():
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (3, 17, 23), generator=gen)
    labels[torch.rand(labels.shape, generator=gen) < 0.2] = IGN
    labels[:, :, :3] = 0
    edge, body = edge_body_masks(labels, edge_width=2)
    ignore = labels == IGN
    assert not (edge & body).any()
    assert torch.equal(edge | body | ignore, torch.ones_like(ignore))
    assert not ((edge | body) & ignore).any()


def test_accepts_n1hw_labels_and_custom_ignore_index():
    labels = _labels([[0, 0, 1, 1]]).unsqueeze(1)
    edge, _ = edge_body_masks(labels, edge_width=1)
    assert edge.shape == (1, 1, 4)
    assert edge[0, 0].tolist() == [False, True, True, False]
    labels = _labels([[0, 0, -1, -1]])
    edge, body = edge_body_masks(labels, edge_width=1, ignore_index=-1)
    assert not edge.any() and body[0, 0].tolist() == [True, True, False, False]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_invalid_edge_width_raises(bad):
    labels = _labels([[0, 1]])
    with pytest.raises(ValueError, match="edge_width"):
        edge_body_masks(labels, edge_width=bad)
    with pytest.raises(ValueError, match="edge_width"):
        soft_edge_mask(labels, 2, bad, (1, 2))


def test_soft_mask_per_class_bands_by_hand():
    # r = 1: a pixel of class A next to class B is in both channels A and B.
    labels = _labels([[0, 0, 1, 1, 2, 2]])
    mask = soft_edge_mask(labels, num_classes=3, edge_width=1, out_size=(1, 6))
    assert mask.shape == (1, 3, 1, 6) and mask.dtype == torch.float32
    assert mask[0, :, 0].tolist() == [
        [0, 1, 1, 0, 0, 0],
        [0, 1, 1, 1, 1, 0],
        [0, 0, 0, 1, 1, 0],
    ]
    # the union of the per-class bands is the boolean edge mask
    edge, _ = edge_body_masks(labels, edge_width=1)
    assert torch.equal((mask > 0).any(dim=1), edge)


def test_soft_mask_average_pooling_by_hand():
    labels = _labels([[0, 0, 0, 0, 0, 0, 1, 1]])  # band at label columns 5 and 6
    mask = soft_edge_mask(labels, 2, 1, (1, 4))  # 2-wide cells: (0,1) (2,3) (4,5) (6,7)
    assert mask[0, :, 0].tolist() == [[0, 0, 0.5, 0.5], [0, 0, 0.5, 0.5]]
    # not divisible: adaptive bins [0,3) [2,6) [5,8) -> 0, 1/4, 2/3
    mask = soft_edge_mask(labels, 2, 1, (1, 3))
    expected = torch.tensor([0.0, 0.25, 2.0 / 3.0])
    assert torch.allclose(mask[0, 0, 0], expected) and torch.allclose(mask[0, 1, 0], expected)
    # a 2-D case: 4x4 labels, vertical boundary, r = 1, pooled 2x2 -> each cell half covered
    labels2 = torch.zeros((1, 4, 4), dtype=torch.long)
    labels2[:, :, 2:] = 1
    mask = soft_edge_mask(labels2, 2, 1, 2)
    assert mask[0, 0].tolist() == [[0.5, 0.5], [0.5, 0.5]]


def test_soft_mask_ignore_is_neutral():
    labels = _labels([[0, 0, IGN, IGN]])
    mask = soft_edge_mask(labels, 2, 1, (1, 4))
    assert not mask.any()
    # the opt-in variant: void erodes the class, band inside class 0 only at column 1
    mask = soft_edge_mask(labels, 2, 1, (1, 4), ignore_is_boundary=True)
    assert mask[0, :, 0].tolist() == [[0, 1, 0, 0], [0, 0, 0, 0]]


def test_soft_mask_union_matches_boolean_edge_with_ignore():
    gen = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 5, (2, 13, 11), generator=gen)
    labels[torch.rand(labels.shape, generator=gen) < 0.25] = IGN
    for r in (1, 2):
        mask = soft_edge_mask(labels, 5, r, labels.shape[-2:])
        edge, _ = edge_body_masks(labels, r)
        assert torch.equal((mask > 0).any(dim=1), edge)
        assert not mask.permute(1, 0, 2, 3)[:, labels == IGN].any()


def test_fp16_work_dtype_matches_fp32():
    gen = torch.Generator().manual_seed(2)
    labels = torch.randint(0, 6, (2, 9, 12), generator=gen)
    labels[:, 0] = IGN
    a = _edge_bands(labels, 6, 2, IGN, False, torch.float32)
    b = _edge_bands(labels, 6, 2, IGN, False, torch.float16)
    assert torch.equal(a, b.float())


def test_soft_mask_rejects_out_of_range_labels():
    with pytest.raises(ValueError, match="outside"):
        soft_edge_mask(_labels([[0, 3]]), 2, 1, (1, 2))
