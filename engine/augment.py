"""Differentiable perturbations: DiffAugment for D, and the foreground perturbations of the methods.

Everything here is differentiable with respect to the images, so it can sit inside the generator
step. As in kornia, drawing the random parameters is apart from applying them: a ``sample_*``
function draws a batch's parameters (from ``generator``, or torch's default generator of the
device, which the trainer seeds and checkpoints) and the function of the same name without the
prefix applies them, a pure function of images and parameters. The caller decides how the draws
are made: a method draws them for the whole global batch under torchrun and keeps its own rows
(``LayeredGan.draw``), so this module knows nothing of processes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ShiftParams:
    """Integer shift of each sample, in pixels: (n,) each."""

    dx: torch.Tensor
    dy: torch.Tensor


@dataclass(frozen=True)
class AffineParams:
    """Per-sample rotation (radians), scale and translation (normalised coordinates): (n,) each."""

    angle: torch.Tensor
    scale: torch.Tensor
    tx: torch.Tensor
    ty: torch.Tensor


@dataclass(frozen=True)
class DiffAugmentParams:
    """DiffAugment's draws: colour factors (n, 1, 1, 1), the shift, the cutout centres (n, 1, 1)."""

    brightness: torch.Tensor  # added, in [-0.5, 0.5)
    saturation: torch.Tensor  # factor in [0, 2)
    contrast: torch.Tensor  # factor in [0.5, 1.5)
    shift: ShiftParams
    cut_y: torch.Tensor
    cut_x: torch.Tensor


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


def sample_shift(n: int, side: int, max_fraction: float, device: torch.device,
                 generator: torch.Generator | None = None) -> ShiftParams:
    """PerturbGAN's perturbation: one integer shift per sample, uniform in +-max_fraction * side
    (no draw at all when that rounds to 0 pixels)."""
    d = int(round(max_fraction * side))
    if d == 0:
        zero = torch.zeros(n, dtype=torch.long, device=device)
        return ShiftParams(zero, zero)
    dx = torch.randint(-d, d + 1, (n,), device=device, generator=generator)
    dy = torch.randint(-d, d + 1, (n,), device=device, generator=generator)
    return ShiftParams(dx, dy)


def shift(x: torch.Tensor, params: ShiftParams) -> torch.Tensor:
    return shift_images(x, params.dx, params.dy)


def sample_affine(n: int, max_shift: float, max_rotate_deg: float, max_scale: float,
                  device: torch.device, generator: torch.Generator | None = None) -> AffineParams:
    """ilgan's restricted affine perturbation: translation, small rotation, small scale."""

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(n, device=device, generator=generator) * (hi - lo) + lo

    angle = uniform(-max_rotate_deg, max_rotate_deg) * (math.pi / 180)
    scale = uniform(1 - max_scale, 1 + max_scale)
    tx = uniform(-2 * max_shift, 2 * max_shift)  # normalised coordinates span 2
    ty = uniform(-2 * max_shift, 2 * max_shift)
    return AffineParams(angle, scale, tx, ty)


def affine(x: torch.Tensor, params: AffineParams) -> torch.Tensor:
    """Warp each sample by its affine parameters; zero fill."""
    cos, sin = torch.cos(params.angle) / params.scale, torch.sin(params.angle) / params.scale
    theta = torch.stack([torch.stack([cos, -sin, params.tx], 1),
                         torch.stack([sin, cos, params.ty], 1)], 1)
    # The warp runs in float32 even under bf16 autocast: bf16 sampling coordinates (8 mantissa
    # bits) are off by up to a pixel at 128 px, a jitter the discriminator would learn to see.
    with torch.autocast(x.device.type, enabled=False):
        x32 = x.float()
        grid = F.affine_grid(theta.float(), list(x.shape), align_corners=False)
        out = F.grid_sample(x32, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.to(x.dtype)


def sample_contrast(n: int, low: float, high: float, device: torch.device, dtype: torch.dtype,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-sample contrast factors (n, 1, 1, 1) in [low, high)."""
    k = torch.rand(n, 1, 1, 1, device=device, dtype=dtype, generator=generator)
    return k * (high - low) + low


def contrast(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Scale each sample's deviation from its mean by its factor ``k`` (PerturbGAN's B jitter)."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * k + mean).clamp(-1, 1)


DIFF_SHIFT = 0.125  # DiffAugment's translation, a fraction of the side


def sample_diff_augment(n: int, height: int, width: int, device: torch.device,
                        dtype: torch.dtype, generator: torch.Generator | None = None,
                        ) -> DiffAugmentParams:
    """Fresh DiffAugment parameters for ``n`` images of ``height`` x ``width``."""

    def r() -> torch.Tensor:
        return torch.rand(n, 1, 1, 1, device=device, dtype=dtype, generator=generator)

    brightness, saturation, contrast_ = r() - 0.5, r() * 2, r() + 0.5
    moved = sample_shift(n, min(height, width), DIFF_SHIFT, device, generator)
    cut_y = torch.randint(0, height, (n, 1, 1), device=device, generator=generator)
    cut_x = torch.randint(0, width, (n, 1, 1), device=device, generator=generator)
    return DiffAugmentParams(brightness, saturation, contrast_, moved, cut_y, cut_x)


def diff_augment(x: torch.Tensor, params: DiffAugmentParams) -> torch.Tensor:
    """DiffAugment colour + translation + cutout on [-1, 1] images.

    The same policy goes on real and fake batches in both D and G steps (fresh parameters for each
    batch), so D never sees an un-augmented image and the augmentation cannot leak into what G
    learns to draw.
    """
    _, _, h, w = x.shape
    x = x + params.brightness
    mean_c = x.mean(dim=1, keepdim=True)
    x = (x - mean_c) * params.saturation + mean_c
    mean_all = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean_all) * params.contrast + mean_all
    x = shift(x, params.shift)
    # Cutout: one square of half the side per sample, zeroed.
    ch, cw = h // 2, w // 2
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    hole = ((ys - params.cut_y).abs() * 2 < ch) & ((xs - params.cut_x).abs() * 2 < cw)
    return x * (~hole).unsqueeze(1).to(x.dtype)
