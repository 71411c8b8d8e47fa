"""The embedded default dataset: procedurally generated street-like scenes.

Deterministic (one seeded generator per image) and download-free. Each scene has
large regions (sky, road, sidewalk, buildings, vegetation) and thin structures
(poles a pixel or two wide, fence bars, signs, people), so there are many
class-to-class boundaries and boundary quality matters. Colours of some classes
overlap (poles, fences and buildings are greys; signs take random hues) and every
image gets texture, lighting jitter and sensor noise, so that a larger model has
something to gain over a smaller one.

Written in mmseg's folder layout (``img_dir/{train,val}``, ``ann_dir/{train,val}``,
PNG) and read back through mmseg's dataset classes like any real dataset.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

CLASSES = ("road", "sidewalk", "building", "fence", "pole", "traffic sign",
           "vegetation", "sky", "person", "car")
# Cityscapes' colours for the same classes, so visualisations look familiar.
PALETTE = ((128, 64, 128), (244, 35, 232), (70, 70, 70), (190, 153, 153), (153, 153, 153),
           (220, 220, 0), (107, 142, 35), (70, 130, 180), (220, 20, 60), (0, 0, 142))
ROAD, SIDEWALK, BUILDING, FENCE, POLE, SIGN, VEGETATION, SKY, PERSON, CAR = range(len(CLASSES))

# Base RGB colour of each class in the rendered image (not the palette above).
_BASE_COLOUR = np.array([
    (95, 90, 100), (150, 140, 135), (120, 110, 105), (125, 118, 110), (128, 128, 128),
    (200, 180, 40), (60, 110, 45), (140, 180, 230), (150, 60, 70), (40, 60, 140)], dtype=np.float32)


def _ellipse(yy, xx, cy, cx, ry, rx):
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def render_scene(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Render one scene: returns ``(image uint8 HxWx3 BGR, label uint8 HxW)``."""
    h, w = height, width
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    label = np.full((h, w), SKY, np.uint8)
    horizon = rng.uniform(0.35, 0.5) * h

    # Buildings: a skyline of blocks standing on the horizon.
    x = -rng.uniform(0, 0.1) * w
    while x < w:
        bw = rng.uniform(0.08, 0.25) * w
        top = horizon - rng.uniform(0.1, 0.35) * h
        label[(xx >= x) & (xx < x + bw) & (yy >= top) & (yy < horizon + 2)] = BUILDING
        x += bw + rng.uniform(0, 0.04) * w

    for _ in range(rng.integers(1, 4)):  # trees in front of the buildings
        cy, cx = horizon - rng.uniform(0, 0.12) * h, rng.uniform(0, w)
        label[_ellipse(yy, xx, cy, cx, rng.uniform(0.06, 0.14) * h, rng.uniform(0.04, 0.12) * w)] = VEGETATION

    # Ground: a road narrowing to a vanishing point, sidewalks either side.
    vp = rng.uniform(0.35, 0.65) * w
    depth = np.clip(yy - horizon, 0, None)
    left, right = vp - depth * rng.uniform(1.0, 2.2), vp + depth * rng.uniform(1.0, 2.2)
    ground = yy >= horizon
    label[ground] = SIDEWALK
    label[ground & (xx > left) & (xx < right)] = ROAD

    # Fence along one side of the road: two rails and 1-px bars every few pixels.
    side = rng.integers(0, 2)
    f_top, f_bot = horizon - 0.08 * h, horizon + 0.02 * h
    fx0, fx1 = (0, vp - 0.1 * w) if side == 0 else (vp + 0.1 * w, w)
    in_band = (yy >= f_top) & (yy < f_bot) & (xx >= fx0) & (xx < fx1)
    period = int(rng.integers(4, 7))
    bars = (xx.astype(int) % period) == 0
    rails = (np.abs(yy - f_top) < 1) | (np.abs(yy - (f_top + f_bot) / 2) < 1)
    label[in_band & (bars | rails)] = FENCE

    # Cars on the road, people on the sidewalk.
    for _ in range(rng.integers(1, 4)):
        cy = rng.uniform(horizon + 0.1 * h, h)
        scale = (cy - horizon) / (h - horizon)
        cw, ch = (0.15 + 0.2 * scale) * w, (0.08 + 0.12 * scale) * h
        cx = rng.uniform(vp - 0.3 * w, vp + 0.3 * w)
        label[(np.abs(xx - cx) < cw / 2) & (yy > cy - ch) & (yy < cy)] = CAR
    for _ in range(rng.integers(0, 4)):
        cy = rng.uniform(horizon + 0.05 * h, h)
        scale = 0.3 + (cy - horizon) / (h - horizon)
        cx = rng.uniform(0, 0.2 * w) if rng.random() < 0.5 else rng.uniform(0.8 * w, w)
        label[_ellipse(yy, xx, cy - 0.09 * h * scale, cx, 0.09 * h * scale, 0.018 * w * scale + 1)] = PERSON

    # Poles (1-2 px wide) with signs on some of them.
    for _ in range(rng.integers(2, 6)):
        px = rng.uniform(0, w)
        base = rng.uniform(horizon + 0.05 * h, h)
        top = horizon - rng.uniform(0.1, 0.3) * h
        pw = rng.choice([1.0, 1.5, 2.0])
        label[(np.abs(xx - px) < pw / 2 + 0.01) & (yy > top) & (yy < base)] = POLE
        if rng.random() < 0.6:
            s = rng.uniform(0.025, 0.05) * h + 1
            if rng.random() < 0.5:
                label[_ellipse(yy, xx, top, px, s, s)] = SIGN
            else:
                label[(np.abs(xx - px) < s) & (np.abs(yy - top) < s * 0.7)] = SIGN

    # Render: class colour with per-image jitter, per-class texture, lighting, noise.
    colour = _BASE_COLOUR + rng.normal(0, 12, _BASE_COLOUR.shape).astype(np.float32)
    colour[SIGN] = rng.uniform(40, 230, 3)  # signs of any hue
    img = colour[label]
    windows = ((xx.astype(int) // 3) % 3 == 0) & ((yy.astype(int) // 4) % 3 == 0)
    img[(label == BUILDING) & windows] *= 0.6
    img[label == VEGETATION] += rng.normal(0, 25, (int((label == VEGETATION).sum()), 1))
    img[label == SKY] += ((horizon - yy[label == SKY]) / h * 40)[:, None]
    img[label == ROAD] += rng.normal(0, 10, (int((label == ROAD).sum()), 1))
    light = 1.0 + 0.25 * np.sin(xx / w * rng.uniform(1, 4) + rng.uniform(0, 6))[..., None]
    img = img * light * rng.uniform(0.75, 1.2) + rng.normal(0, 10, img.shape)
    img = np.clip(img, 0, 255).astype(np.uint8)[..., ::-1]  # RGB -> BGR for cv2
    return np.ascontiguousarray(img), label


def generate(out_dir: str | Path, num_train: int, num_val: int, height: int, width: int, seed: int) -> None:
    """Write the dataset in mmseg's layout under ``out_dir``."""
    out_dir = Path(out_dir)
    for split, count in (("train", num_train), ("val", num_val)):
        (out_dir / "img_dir" / split).mkdir(parents=True, exist_ok=True)
        (out_dir / "ann_dir" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            # One generator per image: any image can be regenerated on its own.
            rng = np.random.default_rng([seed, 0 if split == "train" else 1, i])
            img, label = render_scene(rng, height, width)
            name = f"{split}_{i:05d}.png"
            if not cv2.imwrite(str(out_dir / "img_dir" / split / name), img):
                raise OSError(f"could not write {out_dir / 'img_dir' / split / name}")
            if not cv2.imwrite(str(out_dir / "ann_dir" / split / name), label):
                raise OSError(f"could not write {out_dir / 'ann_dir' / split / name}")
