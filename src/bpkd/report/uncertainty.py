"""Uncertainty panels: per validation image and model, the entropy, error and KL-to-teacher maps.

Beside the qualitative grid, these show *where* a model is unsure or wrong. One block
of three rows per image (entropy, error, KL to the teacher) and one column per model,
after a first column with the image, the ground truth and the edge band; the
evaluation's edge band is outlined (cyan) on every map. The colour scales are shared
by every map of a row and stated on its colour bar: entropy 0 .. ln K nats, error
wrong/right, KL 0 .. ``kl_scale`` nats (larger values saturate).
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np


@dataclass
class ModelMaps:
    title: str
    entropy: np.ndarray  # (H, W) nats
    error: np.ndarray  # (H, W) bool, valid pixels only
    kl: np.ndarray | None  # (H, W) nats; None for the teacher


@dataclass
class ImagePanel:
    index: int  # validation index
    image: np.ndarray  # (H, W, 3) RGB uint8
    label_rgb: np.ndarray  # (H, W, 3) RGB uint8, the ground truth in the dataset's palette
    edge: np.ndarray  # (H, W) bool, the evaluation's edge band
    models: list[ModelMaps]


def render_panels(panels: list[ImagePanel], num_classes: int, kl_scale: float, edge_radius_px: int) -> bytes:
    """The panels as one PNG (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    cols = 1 + len(panels[0].models)
    h, w = panels[0].edge.shape
    tile = 2.2  # inches per tile width
    fig, axes = plt.subplots(3 * len(panels), cols, figsize=(tile * cols + 1.2, 3 * len(panels) * tile * h / w + 0.6),
                             squeeze=False, constrained_layout=True)
    h_max = math.log(num_classes)
    error_map = ListedColormap(["#f0f0f0", "#d62728"])  # right, wrong
    handles = {}
    for p_i, panel in enumerate(panels):
        rows = axes[3 * p_i: 3 * p_i + 3]
        firsts = (panel.image, panel.label_rgb, np.where(panel.edge[..., None], 255, 40).astype(np.uint8).repeat(3, 2))
        names = (f"val image {panel.index}", "ground truth", f"edge band (r={edge_radius_px} px)")
        for ax, img, name in zip(rows[:, 0], firsts, names):
            ax.imshow(img)
            ax.set_title(name, fontsize=7)
        for c, m in enumerate(panel.models, start=1):
            handles["entropy"] = rows[0, c].imshow(m.entropy, cmap="viridis", vmin=0, vmax=h_max)
            handles["error"] = rows[1, c].imshow(m.error.astype(float), cmap=error_map, vmin=0, vmax=1)
            if m.kl is not None:
                handles["kl"] = rows[2, c].imshow(m.kl, cmap="magma", vmin=0, vmax=kl_scale)
            else:
                rows[2, c].text(0.5, 0.5, "(the teacher)", ha="center", va="center", fontsize=7,
                                transform=rows[2, c].transAxes)
            rows[0, c].set_title(m.title, fontsize=7)
            if c == 1:
                for ax, name in zip(rows[:, c], ("entropy", "error", "KL to teacher")):
                    ax.set_ylabel(name, fontsize=7)
            for ax in rows[:, c]:
                ax.contour(panel.edge, levels=[0.5], colors="cyan", linewidths=0.3)
        for ax in rows.flat:
            ax.set_xticks([])
            ax.set_yticks([])
        for r, (key, label) in enumerate((("entropy", "entropy (nats)"), ("error", "red: wrong"),
                                         ("kl", "KL (nats)"))):
            if key in handles:
                bar = fig.colorbar(handles[key], ax=rows[r, :].tolist(), shrink=0.9, pad=0.01)
                bar.set_label(label, fontsize=7)
                bar.ax.tick_params(labelsize=6)
    fig.suptitle(f"Shared scales: entropy 0 .. ln {num_classes} = {h_max:.2f} nats; error: red where the prediction "
                 f"is wrong; KL(teacher || student) 0 .. {kl_scale:g} nats (larger saturates). Cyan: the "
                 f"evaluation's edge band (r = {edge_radius_px} px).", fontsize=8)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=110)
    plt.close(fig)
    return out.getvalue()
