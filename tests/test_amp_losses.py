"""Under mixed precision every distillation loss stays fp32 (docs/performance.md, "Mixed precision and speed").

Each method's loss (and the discriminator's own loss) is computed twice on the same
numbers: once on bf16 tensors inside CPU bf16 autocast, as a student forward under
``profiles.<p>.train.amp: bf16`` produces them, and once on their fp32 copies with no
autocast. The two must be fp32 and bit-identical: the losses disable autocast and cast
their inputs to fp32, so nothing of the loss itself runs in bf16.
"""
from __future__ import annotations

import copy

import pytest
import torch

from bpkd.distill.losses import METHODS, build_method
from bpkd.distill.losses.base import Recorded

K, C_S, C_T = 3, 4, 6
# Small discriminator and memory banks; every method's other knobs are its defaults.
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
        assert torch.equal(mixed[key], full[key]), (key, mixed[key].item(), full[key].item())
