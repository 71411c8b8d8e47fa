"""Class activation maps of each model for one class and image (captum's ``LayerGradCam``).

Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization", ICCV 2017, arXiv:1610.02391) as the paper's visualisation
page shows CAM panels. The layer is the input of the decode head's classifier
(``decode_head.conv_seg``: the decode feature every method distils), so the map is
``ReLU(sum_k alpha_k A_k)`` with ``alpha_k`` the spatial mean gradient of the score
over feature channel ``k``. The score of class ``c`` for segmentation is its logit
summed over the ground-truth pixels of ``c`` (the same region for every model, so
the maps compare). The whole image is one forward (fully convolutional), the teacher
and students alike; each map is shown scaled to its own maximum.
"""
from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F


def grad_cam(model, inputs: torch.Tensor, label: torch.Tensor, class_index: int) -> np.ndarray:
    """``(H, W)`` Grad-CAM in [0, 1] of an mmseg segmentor for ``class_index`` on one
    preprocessed image ``inputs`` ``(1, 3, H, W)``; ``label`` ``(H, W)`` selects the pixels
    whose class-``c`` logits are summed (all pixels if the class is absent)."""
    from captum.attr import LayerAttribution, LayerGradCam

    def score(x):
        logits = model._forward(x)  # (1, K, h, w): the decode head's output
        region = F.interpolate((label == class_index).float()[None, None], size=logits.shape[-2:], mode="nearest")
        if region.sum() == 0:
            region = torch.ones_like(region)
        return (logits[:, class_index:class_index + 1] * region).sum(dim=(1, 2, 3))

    cam = LayerGradCam(score, model.decode_head.conv_seg)
    with torch.enable_grad():
        attr = cam.attribute(inputs, attribute_to_layer_input=True, relu_attributions=True)
    attr = LayerAttribution.interpolate(attr, tuple(inputs.shape[-2:]), interpolate_mode="bilinear")[0, 0]
    attr = attr.detach().clamp(min=0)
    top = float(attr.max())
    return (attr / top).numpy() if top > 0 else attr.numpy()


def render_cams(image: np.ndarray, cams: list[tuple[str, np.ndarray]], class_name: str, index: int,
                region: np.ndarray) -> bytes:
    """One row: the image, then each model's CAM over it (jet, alpha 0.5), the class's
    ground-truth region outlined in white, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h, w = image.shape[:2]
    cols = 1 + len(cams)
    fig, axes = plt.subplots(1, cols, figsize=(2.2 * cols + 1.0, 2.2 * h / w + 0.5), squeeze=False,
                             constrained_layout=True)
    axes[0, 0].imshow(image)
    axes[0, 0].set_title(f"val image {index}", fontsize=7)
    handle = None
    for ax, (title, cam) in zip(axes[0, 1:], cams):
        ax.imshow(image)
        handle = ax.imshow(cam, cmap="jet", alpha=0.5, vmin=0, vmax=1)
        if region.any():
            ax.contour(region, levels=[0.5], colors="white", linewidths=0.5)
        ax.set_title(title, fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if handle is not None:
        bar = fig.colorbar(handle, ax=axes[0, :].tolist(), shrink=0.9, pad=0.01)
        bar.ax.tick_params(labelsize=6)
    fig.suptitle(f"Grad-CAM of class '{class_name}' at the decode head's classifier input (captum LayerGradCam), "
                 f"each map scaled to its own maximum; white: the ground-truth '{class_name}' pixels", fontsize=8)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=110)
    plt.close(fig)
    return out.getvalue()
