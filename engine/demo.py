"""Synthetic demo photos with exact masks: a folder anyone can train and measure on in minutes.

The demo has to be a fair test of unsupervised segmentation, not a colour-keying exercise: object
and background colours are drawn from the same distribution, so colour alone cannot separate them.
What differs is kind, as in real photos: objects are compact, shaded like a lit 3-D surface and
carry fine texture; backgrounds are flat-lit, extend past the frame and carry larger patterns
(smooth noise, stripes, gradients, soft blobs). Every image is generated from its own seeded RNG,
so a folder is byte-identical for one seed and any image can be regenerated alone.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from engine.atomic import write_bytes, write_json

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1
SHAPES = ("ellipse", "superellipse", "polygon", "star", "blob")
BACKGROUNDS = ("noise", "stripes", "gradient", "blobs")
STEM_FORMAT = "demo_{:05d}"


def _colour(rng: np.random.Generator) -> np.ndarray:
    """One RGB colour in [0, 1]; objects and backgrounds both draw from here (fair test)."""
    hsv = np.array(
        [[[rng.uniform(0, 180), rng.uniform(0.15, 0.9) * 255, rng.uniform(0.3, 0.95) * 255]]],
        np.float32,
    ).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255.0


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Value noise in [0, 1]: a coarse random grid upsampled smoothly."""
    grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
    noise = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
    lo, hi = float(noise.min()), float(noise.max())
    return (noise - lo) / max(hi - lo, 1e-6)


def _background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
    kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    c1, c2 = _colour(rng), _colour(rng)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if kind == "noise":
        t = _smooth_noise(rng, size, int(rng.integers(2, 6)))
    elif kind == "stripes":
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(0.15, 0.4)
        phase = (xx * np.cos(angle) + yy * np.sin(angle)) / period
        t = 0.5 + 0.5 * np.sin(2 * np.pi * phase + rng.uniform(0, 2 * np.pi))
        t = t * rng.uniform(0.5, 1.0)  # low-contrast stripes are common in real scenes
    elif kind == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        t = xx * np.cos(angle) + yy * np.sin(angle)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    else:  # soft blobs: out-of-focus shapes behind the object
        t = np.zeros((size, size), np.float32)
        for _ in range(int(rng.integers(2, 5))):
            cx, cy, r = rng.uniform(-0.1, 1.1), rng.uniform(-0.1, 1.1), rng.uniform(0.1, 0.35)
            t += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
        t = np.clip(t, 0, 1)
    img = (1 - t[..., None]) * c1 + t[..., None] * c2
    if rng.random() < 0.5:  # depth-of-field blur
        k = 2 * int(rng.integers(1, max(2, size // 32) + 1)) + 1
        img = cv2.GaussianBlur(img, (k, k), 0)
    return img.astype(np.float32), kind


def _radius(kind: str, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Boundary radius r(θ) in units of the object's scale (about 1 on average)."""
    if kind == "ellipse":
        return np.ones_like(theta)
    if kind == "superellipse":
        n = rng.uniform(3.0, 6.0)
        return (np.abs(np.cos(theta)) ** n + np.abs(np.sin(theta)) ** n) ** (-1.0 / n)
    if kind == "polygon":
        # Regular polygon (3-7 sides) r(θ) = cos(π/k) / cos(θ mod (2π/k) − π/k); corners are
        # rounded below by the anti-aliasing blur of the inside function.
        k = int(rng.integers(3, 8))
        seg = 2 * np.pi / k
        return np.cos(np.pi / k) / np.cos(np.mod(theta, seg) - np.pi / k)
    if kind == "star":
        k = int(rng.integers(4, 8))
        depth = rng.uniform(0.2, 0.4)
        return 1.0 - depth * (0.5 + 0.5 * np.cos(k * theta))
    # blob: a few low harmonics
    r = np.ones_like(theta)
    for h in range(2, 5):
        r += rng.uniform(0.0, 0.18) * np.cos(h * theta + rng.uniform(0, 2 * np.pi))
    return r


def _object(
    rng: np.random.Generator, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Return (alpha in [0, 1], exact mask bool, object RGB, shape kind)."""
    kind = SHAPES[int(rng.integers(len(SHAPES)))]
    scale = rng.uniform(0.16, 0.34) * size
    aspect = rng.uniform(0.65, 1.5)
    rot = rng.uniform(0, 2 * np.pi)
    # Mostly near the centre (as in object-centric photo folders) but never fixed there.
    centre = size / 2 + np.clip(rng.normal(0, 0.08 * size, 2), -0.2 * size, 0.2 * size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    dx, dy = xx - centre[0], yy - centre[1]
    u = (dx * np.cos(rot) + dy * np.sin(rot)) / (scale * np.sqrt(aspect))
    v = (-dx * np.sin(rot) + dy * np.cos(rot)) / (scale / np.sqrt(aspect))
    rho = np.sqrt(u * u + v * v)
    theta = np.arctan2(v, u)
    rel = rho / _radius(kind, theta, rng)  # < 1 inside the shape
    # Signed distance to the edge in pixels (approximately), anti-aliased over about one pixel.
    edge_px = (1.0 - rel) * scale
    alpha = np.clip(edge_px + 0.5, 0.0, 1.0).astype(np.float32)
    mask = alpha >= 0.5

    # Shading as a lit dome: height from the relative radius, normal from its gradient.
    height = np.sqrt(np.clip(1.0 - rel * rel, 0.0, 1.0))
    gy, gx = np.gradient(height * scale)
    normal = np.stack([-gx, -gy, np.ones_like(gx)], axis=-1)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    light = np.array([rng.uniform(-0.7, 0.7), rng.uniform(-0.7, 0.2), 1.0], np.float32)
    light /= np.linalg.norm(light)
    lambert = np.clip(normal @ light, 0.0, 1.0)
    spec = np.clip(normal @ (light + np.array([0, 0, 1], np.float32)) / 1.6, 0, 1) ** 20
    shade = 0.35 + 0.75 * lambert

    base = _colour(rng)
    texture_kind = int(rng.integers(3))
    if texture_kind == 0:  # fine grain
        tex = 1.0 + 0.12 * (rng.random((size, size)).astype(np.float32) - 0.5)
        tex = cv2.GaussianBlur(tex, (3, 3), 0)
        rgb = base * tex[..., None]
    elif texture_kind == 1:  # spots of a second colour
        spots = _smooth_noise(rng, size, max(4, size // 8)) > 0.65
        rgb = np.where(spots[..., None], _colour(rng), base)
    else:  # two-tone along the object's own axis
        t = np.clip(0.5 + 0.5 * u / 1.2, 0, 1)[..., None]
        rgb = (1 - t) * base + t * _colour(rng)
    rgb = rgb * shade[..., None] + 0.35 * spec[..., None]
    return alpha, mask, np.clip(rgb, 0, 1).astype(np.float32), kind


def make_demo_image(seed: int, index: int, size: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """One photo (H, W, 3 uint8 RGB), its exact mask (uint8 0/255) and what was drawn."""
    rng = np.random.default_rng([seed, index, GENERATOR_VERSION])
    bg, bg_kind = _background(rng, size)
    alpha, mask, fg, shape = _object(rng, size)
    # A soft contact shadow on the background only: real objects darken what is behind them,
    # and the mask must not follow it.
    shift = int(round(0.04 * size))
    shadow = np.roll(alpha, (shift, shift), axis=(0, 1))
    k = 2 * max(1, size // 24) + 1
    shadow = cv2.GaussianBlur(shadow, (k, k), 0) * rng.uniform(0.15, 0.4)
    bg = bg * (1.0 - shadow[..., None])
    img = (1 - alpha[..., None]) * bg + alpha[..., None] * fg
    img = img + rng.normal(0, 0.015, img.shape).astype(np.float32)  # sensor noise
    rgb = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    info = {"shape": shape, "background": bg_kind, "coverage": float(mask.mean())}
    return rgb, (mask.astype(np.uint8) * 255), info


def _encode_png(array: np.ndarray, name: str) -> bytes:
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", array)
    if not ok:
        raise RuntimeError(f"PNG encoding failed for {name}")
    return buf.tobytes()


def make_demo_folder(
    out: str | os.PathLike[str],
    count: int = 200,
    size: int = 128,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Write ``count`` photos to ``out``/NAME.png, masks to ``out``/masks/NAME.png, stats to
    ``out``/demo.json, and return the stats.

    ``mean_coverage`` in the stats is the true mean fraction of object pixels: training runs on
    the demo check the coverage they learn against it.
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    if size < 16:
        raise ValueError("size must be at least 16 px (smaller images are skipped by training)")
    root = Path(out)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    coverages: list[float] = []
    shapes: dict[str, int] = {k: 0 for k in SHAPES}
    backgrounds: dict[str, int] = {k: 0 for k in BACKGROUNDS}
    for i in range(count):
        rgb, mask, info = make_demo_image(seed, i, size)
        stem = STEM_FORMAT.format(i)
        write_bytes(root / f"{stem}.png", _encode_png(rgb, stem))
        write_bytes(root / "masks" / f"{stem}.png", _encode_png(mask, stem))
        coverages.append(info["coverage"])
        shapes[info["shape"]] += 1
        backgrounds[info["background"]] += 1
        if progress is not None:
            progress(i + 1, count)
    cov = np.array(coverages)
    stats = {
        "generator_version": GENERATOR_VERSION,
        "count": count,
        "size": size,
        "seed": seed,
        "mean_coverage": round(float(cov.mean()), 6),
        "min_coverage": round(float(cov.min()), 6),
        "max_coverage": round(float(cov.max()), 6),
        "shapes": shapes,
        "backgrounds": backgrounds,
        "coverage": [round(c, 6) for c in coverages],
        "images": ".",
        "masks": "masks",
    }
    write_json(root / "demo.json", stats)
    log.debug("wrote %d demo images (%d px) to %s, mean coverage %.3f",
             count, size, root, stats["mean_coverage"])
    return stats
