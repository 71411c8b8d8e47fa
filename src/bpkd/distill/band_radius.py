"""Band radii are set at the paper's resolution and converted to the data's image scale.

BPKD's published band radius (``loss.edge_width``, r = 3; Wang et al., "Boundary-Privileged
Knowledge Distillation", arXiv 2306.08075) and the evaluation's edge band (3 px) were set on
Cityscapes frames, 1024x2048 (trained as 512x1024 crops after mmseg's 0.5-2.0 random
resize). The embedded synthetic scenes are drawn smaller (256x512 on the demo): the same
street spans 4x fewer pixels, so a 3-px band covered a third of the student's logit cells
against the paper-like ~1/6 (docs/bpkd-figure3.md). Radii in params are therefore
read at the paper's resolution, and a stage that draws a band converts them by the image
scale of the data it reads: ``max(1, round(r * H / 1024))`` (halves round up), ``H`` the
height of the synthetic scenes. Real datasets are read at their own resolution and keep
``r`` unchanged.

The price: on the demo (``H = 256``) radii 1-5 all become 1 px; a radius ablation there
needs ``r`` in steps of 4 (4, 8, 12 -> 1, 2, 3 px), or the ``paper`` profile.
"""
from __future__ import annotations

import math

PAPER_FRAME_HEIGHT = 1024  # Cityscapes frames, where r = 3 was published
# The evaluation's edge band (edge/body mIoU, the qualitative grid's regions).
EVAL_EDGE_RADIUS = 3


def band_radius(radius: int, image_hw: tuple[int, int] | None) -> int:
    """``radius`` (pixels at the paper's resolution) in pixels of images ``image_hw``;
    ``None``: a real dataset, read at its own resolution."""
    if isinstance(radius, bool) or not isinstance(radius, int) or radius < 1:
        raise ValueError(f"band radius must be an integer >= 1, got {radius!r}")
    if image_hw is None:
        return radius
    return max(1, math.floor(radius * image_hw[0] / PAPER_FRAME_HEIGHT + 0.5))


def method_at_image_scale(method_cls, method_params: dict, image_hw: tuple[int, int] | None) -> dict:
    """``method_params`` with the method's radii (its ``RADII`` names) converted to ``image_hw``."""
    out = dict(method_params)
    for name in getattr(method_cls, "RADII", ()):
        out[name] = band_radius(out.get(name, method_cls.DEFAULTS[name]), image_hw)
    return out
