"""Under mixed precision every distillation loss stays fp32 (docs/performance.md, "Mixed precision and speed").

Each method's loss (and the discriminator's own loss) is computed twice on the same
numbers: once on bf16 tensors inside CPU bf16 autocast, as a student forward under
``profiles.<p>.train.amp: bf16`` produces them, and once on their fp32 copies with no
autocast. The two must be fp32 and bit-identical: the losses disable autocast and cast
their inputs to fp32, so nothing of the loss itself runs in bf16. One exception, by
design: CIRKD's relation products (``cirkd.similarity_logits``) take bf16 operands under
bf16 autocast, as autocast runs a matmul; those terms are fp32, differ from the fp32
ones, and stay within a bf16-sized tolerance of them.
"""
from __future__ import annotations

import copy

import pytest
import torch

from bpkd.distill.losses import METHODS, build_method
from bpkd.distill.losses.base import Recorded

K, C_S, C_T = 3, 4, 6
# Small discriminator and memory banks; every method's other knobs are its defaults.
# Terms whose matmuls follow the run's precision (bf16 operands, fp32 result).
LOW_PRECISION_MATMULS = {"loss_cirkd_batch", "loss_cirkd_mem_pixel", "loss_cirkd_mem_region"}
PARAMS = {"skds": {"d_base_channels": 4}, "ifvd": {"d_base_channels": 4},
          "cirkd": {"pixel_queue_size": 10, "region_queue_size": 4, "pixels_per_class": 2,
                    "pixel_contrast": 6, "region_contrast": 4},
          "cwd": {}, "bpkd": {"edge_width": 1}}


def _inputs():
    g = torch.Generator().manual_seed(0)
    # bf16 values (what autocast's convolutions emit); the teacher at half the student's
    # size, so that the losses' resize of the teacher runs too.
    student = Recorded(logits=torch.randn(2, K, 8, 8, generator=g).bfloat16(),
                       features=torch.randn(2, C_S, 8, 8, generator=g).bfloat16())
    teacher = Recorded(logits=torch.randn(2, K, 4, 4, generator=g).bfloat16(),
                       features=torch.randn(2, C_T, 4, 4, generator=g).bfloat16())
    labels = torch.randint(0, K, (2, 32, 32), generator=g)
    labels[:, :4] = 255  # some ignore pixels
    return student, teacher, labels


def _fp32(rec: Recorded) -> Recorded:
    return Recorded(logits=rec.logits.float(), features=rec.features.float())


def _terms(method, student, teacher, labels, autocast: bool) -> dict:
    method = copy.deepcopy(method)  # memory banks, spectral norm and BN statistics move per call
    torch.manual_seed(1)  # CIRKD samples its memory keys
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16, enabled=autocast):
        terms = method(student, teacher, labels)
        if method.discriminator is not None:
            terms.update(method.discriminator_loss(student.logits.detach(), teacher.logits))
    return terms


@pytest.mark.parametrize("name", list(METHODS))
def test_each_loss_is_fp32_and_identical_under_bf16_autocast(name):
    method = build_method(name, PARAMS[name], num_classes=K, student_channels=C_S, teacher_channels=C_T,
                          ignore_index=255)
    student, teacher, labels = _inputs()
    mixed = _terms(method, student, teacher, labels, autocast=True)
    full = _terms(method, _fp32(student), _fp32(teacher), labels, autocast=False)
    assert list(mixed) == list(full) and len(full) >= 1
    for key in full:
        assert mixed[key].dtype == torch.float32, (key, mixed[key].dtype)
        assert full[key].dtype == torch.float32
        assert torch.isfinite(full[key]) and full[key].item() != 0.0, (key, full[key])
        if key in LOW_PRECISION_MATMULS:
            assert not torch.equal(mixed[key], full[key]), key  # the products did run in bf16
            assert mixed[key].item() == pytest.approx(full[key].item(), rel=2e-2), key
        else:
            assert torch.equal(mixed[key], full[key]), (key, mixed[key].item(), full[key].item())


def test_cirkd_bf16_relation_products_are_close_to_fp32_at_a_realistic_width():
    """Unit-vector rows against a few hundred keys, the teacher's 720 channels: the bf16
    operands move the KL sum by ~1e-5 and its gradient by ~0.4 % (bounds: 0.1 %, 2 %)."""
    from bpkd.distill.losses.cirkd import chunked_kl_sum

    g = torch.Generator().manual_seed(0)
    unit = lambda *shape: torch.nn.functional.normalize(torch.randn(*shape, generator=g), dim=-1)  # noqa: E731
    s_rows, t_rows, keys = unit(256, 720).requires_grad_(), unit(256, 720), unit(512, 720).t().contiguous()
    full = chunked_kl_sum(s_rows, keys, t_rows, keys, 0.1)
    (g_full,) = torch.autograd.grad(full, s_rows)
    low = chunked_kl_sum(s_rows, keys, t_rows, keys, 0.1, torch.bfloat16)
    (g_low,) = torch.autograd.grad(low, s_rows)
    assert low.dtype == torch.float32 and g_low.dtype == torch.float32
    assert low.item() == pytest.approx(full.item(), rel=1e-3)
    assert (g_low - g_full).norm() / g_full.norm() < 2e-2
