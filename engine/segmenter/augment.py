"""Paired augmentation for segmenter training: the same geometry for image and mask, colour on the image.

The segmenter learns from noisy targets (GrabCut masks, GAN samples) and is then used on real photos
that look nothing like a fixed crop of the training set. Flips, scale/shift and colour jitter make it
learn shape and contrast rather than the exact pixels of its few hundred targets, which is what lets
it beat the GrabCut masks it was trained on. Everything runs batched in torch, on the training device.
The draws (``sample_augment``) are apart from the pure functions that apply them, as in kornia.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    flip: bool = True
    scale: tuple[float, float] = (0.8, 1.25)  # zoom factor; > 1 zooms in
    shift: float = 0.1  # max translation as a fraction of the side
    brightness: float = 0.2  # additive, in [-1, 1] units
    contrast: float = 0.25  # multiplicative spread around the per-image mean
    saturation: float = 0.4  # mix towards / away from grey
    hue_swap: float = 0.1  # probability of permuting RGB channels (object colour is not the cue)


@dataclass(frozen=True)
class AugmentParams:
    """One batch's draws: zoom, flip sign, shift (n,); channel swap (n,) bool and the permutation
    (3,), or None without ``hue_swap``; saturation, contrast and brightness (n, 1, 1, 1)."""

    zoom: torch.Tensor
    sign: torch.Tensor
    tx: torch.Tensor
    ty: torch.Tensor
    swap: torch.Tensor | None
    perm: torch.Tensor | None
    saturation: torch.Tensor
    contrast: torch.Tensor
    brightness: torch.Tensor


def sample_augment(n: int, cfg: AugmentConfig, device: torch.device,
                   generator: torch.Generator | None = None) -> AugmentParams:
    """Draw a batch's augmentation (from ``generator``, or torch's default one of ``device``)."""

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return torch.empty(n, device=device).uniform_(lo, hi, generator=generator)

    lo, hi = cfg.scale
    # Log-uniform zoom so zoom in and zoom out are equally likely.
    zoom = torch.exp(uniform(math.log(lo), math.log(hi)))
    if cfg.flip:
        sign = torch.where(torch.rand(n, device=device, generator=generator) < 0.5, -1.0, 1.0)
    else:
        sign = torch.ones(n, device=device)
    tx = uniform(-cfg.shift, cfg.shift) * 2
    ty = uniform(-cfg.shift, cfg.shift) * 2
    swap = perm = None
    if cfg.hue_swap > 0:
        swap = torch.rand(n, device=device, generator=generator) < cfg.hue_swap
        perm = torch.randperm(3, device=device, generator=generator)
    sat = 1 + uniform(-cfg.saturation, cfg.saturation)[:, None, None, None]
    con = 1 + uniform(-cfg.contrast, cfg.contrast)[:, None, None, None]
    bright = uniform(-cfg.brightness, cfg.brightness)[:, None, None, None]
    return AugmentParams(zoom, sign, tx, ty, swap, perm, sat, con, bright)


def geometric(
    images: torch.Tensor, masks: torch.Tensor, params: AugmentParams
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip, zoom and shift, applied identically to images and masks.

    Reflection padding fills what a zoom-out uncovers; the mask is warped with the same grid, so the
    mirrored content stays correctly labelled.
    """
    n = images.shape[0]
    sx = 1.0 / params.zoom
    theta = torch.zeros(n, 2, 3, device=images.device)
    theta[:, 0, 0] = sx * params.sign
    theta[:, 1, 1] = sx
    theta[:, 0, 2] = params.tx
    theta[:, 1, 2] = params.ty
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out_img = F.grid_sample(
        images, grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )
    out_mask = F.grid_sample(
        masks, grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )
    return out_img, out_mask


def photometric(images: torch.Tensor, params: AugmentParams) -> torch.Tensor:
    """Channel permutation, saturation, contrast and brightness jitter (images only)."""
    x = images
    if params.swap is not None and params.perm is not None:
        # Always permuted and selected on the device: asking ``swap.any()`` first would wait
        # for the GPU at every step to save one cheap gather.
        x = torch.where(params.swap[:, None, None, None], x[:, params.perm], x)
    grey = x.mean(dim=1, keepdim=True)
    x = grey + (x - grey) * params.saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = mean + (x - mean) * params.contrast
    x = x + params.brightness
    return x.clamp(-1, 1)


def augment_pairs(
    images: torch.Tensor, masks: torch.Tensor, cfg: AugmentConfig | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment a batch of (images in [-1, 1] (n,3,H,W), masks in [0, 1] (n,1,H,W)) with fresh
    draws (``sample_augment``), the same geometry for both."""
    params = sample_augment(images.shape[0], cfg or AugmentConfig(), images.device, generator)
    images, masks = geometric(images, masks, params)
    return photometric(images, params), masks.clamp(0, 1)
