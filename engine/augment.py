"""Differentiable perturbations: DiffAugment for D, and the foreground perturbations of the methods.

Everything here is differentiable with respect to the images, so it can sit inside the generator
step. Random parameters are drawn per sample from torch's global RNG (seeded and checkpointed by the
trainer), through ``rows`` so that under torchrun each sample of the global batch gets the same
numbers as in a single process (engine/parallel/distributed.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from engine.parallel.distributed import rows


def shift_images(x: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """Shift each sample by integer (dx, dy) pixels; uncovered pixels become 0.

    A gather rather than grid_sample: exact, cheaper on CPU, and 0 stays 0 (an empty mask border).
    """
    n, c, h, w = x.shape
    ys = torch.arange(h, device=x.device).view(1, h, 1) - dy.view(n, 1, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w) - dx.view(n, 1, 1)
    valid = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    idx = (ys.clamp(0, h - 1) * w + xs.clamp(0, w - 1)).view(n, 1, h * w).expand(n, c, h * w)
    out = x.reshape(n, c, h * w).gather(2, idx).view(n, c, h, w)
    return out * valid.unsqueeze(1).to(x.dtype)


def random_shift(x: torch.Tensor, max_fraction: float) -> torch.Tensor:
    """PerturbGAN's perturbation: one integer shift per sample, uniform in +-max_fraction * side."""
    n, _, h, w = x.shape
    d = int(round(max_fraction * min(h, w)))
    if d == 0:
        return x
    dx = rows(n, lambda m: torch.randint(-d, d + 1, (m,), device=x.device))
    dy = rows(n, lambda m: torch.randint(-d, d + 1, (m,), device=x.device))
    return shift_images(x, dx, dy)


def random_affine(
    x: torch.Tensor, max_shift: float, max_rotate_deg: float, max_scale: float
) -> torch.Tensor:
    """Restricted affine perturbation (ilgan): translation, small rotation, small scale; zero fill."""
    n = x.shape[0]
    dev = x.device

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return rows(n, lambda m: torch.rand(m, device=dev)) * (hi - lo) + lo

    angle = uniform(-max_rotate_deg, max_rotate_deg) * (math.pi / 180)
    scale = uniform(1 - max_scale, 1 + max_scale)
    tx = uniform(-2 * max_shift, 2 * max_shift)  # normalised coordinates span 2
    ty = uniform(-2 * max_shift, 2 * max_shift)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    # The warp runs in float32 even under bf16 autocast: bf16 sampling coordinates (8 mantissa
    # bits) are off by up to a pixel at 128 px, a jitter the discriminator would learn to see.
    with torch.autocast(dev.type, enabled=False):
        x32 = x.float()
        grid = F.affine_grid(theta.float(), list(x.shape), align_corners=False)
        out = F.grid_sample(x32, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.to(x.dtype)


def contrast_jitter(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Scale each sample's deviation from its mean by a factor in [low, high] (PerturbGAN's B)."""
    k = rows(x.shape[0], lambda m: torch.rand(m, 1, 1, 1, device=x.device, dtype=x.dtype))
    k = k * (high - low) + low
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * k + mean).clamp(-1, 1)


def diff_augment(x: torch.Tensor) -> torch.Tensor:
    """DiffAugment colour + translation + cutout on [-1, 1] images (fresh parameters per call).

    The same policy goes on real and fake batches in both D and G steps, so D never sees an
    un-augmented image and the augmentation cannot leak into what G learns to draw.
    """
    n, _, h, w = x.shape
    dev, dt = x.device, x.dtype

    def r(*shape: int) -> torch.Tensor:
        return rows(n, lambda m: torch.rand(m, *shape, device=dev, dtype=dt))

    x = x + (r(1, 1, 1) - 0.5)  # brightness +-0.5
    mean_c = x.mean(dim=1, keepdim=True)
    x = (x - mean_c) * (r(1, 1, 1) * 2) + mean_c  # saturation x[0, 2]
    mean_all = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean_all) * (r(1, 1, 1) + 0.5) + mean_all  # contrast x[0.5, 1.5]
    x = random_shift(x, 0.125)
    # Cutout: one square of half the side per sample, zeroed.
    ch, cw = h // 2, w // 2
    cy = rows(n, lambda m: torch.randint(0, h, (m, 1, 1), device=dev))
    cx = rows(n, lambda m: torch.randint(0, w, (m, 1, 1), device=dev))
    ys = torch.arange(h, device=dev).view(1, h, 1)
    xs = torch.arange(w, device=dev).view(1, 1, w)
    hole = ((ys - cy).abs() * 2 < ch) & ((xs - cx).abs() * 2 < cw)
    return x * (~hole).unsqueeze(1).to(dt)
