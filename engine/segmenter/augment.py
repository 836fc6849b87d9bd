"""Paired augmentation for segmenter training: the same geometry for image and mask, colour on the image.

The segmenter learns from noisy targets (GrabCut masks, GAN samples) and is then used on real photos
that look nothing like a fixed crop of the training set. Flips, scale/shift and colour jitter make it
learn shape and contrast rather than the exact pixels of its few hundred targets, which is what lets
it beat the GrabCut masks it was trained on. Everything runs batched in torch, on the training device.
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


def _uniform(n: int, lo: float, hi: float, device: torch.device) -> torch.Tensor:
    return torch.empty(n, device=device).uniform_(lo, hi)


def geometric(
    images: torch.Tensor, masks: torch.Tensor, cfg: AugmentConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random flip, zoom and shift, applied identically to images and masks.

    Reflection padding fills what a zoom-out uncovers; the mask is warped with the same grid, so the
    mirrored content stays correctly labelled.
    """
    n, dev = images.shape[0], images.device
    lo, hi = cfg.scale
    # Log-uniform zoom so zoom in and zoom out are equally likely.
    zoom = torch.exp(_uniform(n, math.log(lo), math.log(hi), dev))
    sx = 1.0 / zoom
    if cfg.flip:
        sign = torch.where(torch.rand(n, device=dev) < 0.5, -1.0, 1.0)
    else:
        sign = torch.ones(n, device=dev)
    tx = _uniform(n, -cfg.shift, cfg.shift, dev) * 2
    ty = _uniform(n, -cfg.shift, cfg.shift, dev) * 2
    theta = torch.zeros(n, 2, 3, device=dev)
    theta[:, 0, 0] = sx * sign
    theta[:, 1, 1] = sx
    theta[:, 0, 2] = tx
    theta[:, 1, 2] = ty
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out_img = F.grid_sample(
        images, grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )
    out_mask = F.grid_sample(
        masks, grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )
    return out_img, out_mask


def photometric(images: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    """Brightness, contrast, saturation jitter and occasional channel permutation (images only)."""
    n, dev = images.shape[0], images.device
    x = images
    if cfg.hue_swap > 0:
        # Always permuted and selected on the device: asking ``swap.any()`` first would wait
        # for the GPU at every step to save one cheap gather.
        swap = torch.rand(n, device=dev) < cfg.hue_swap
        perm = torch.randperm(3, device=dev)
        x = torch.where(swap[:, None, None, None], x[:, perm], x)
    grey = x.mean(dim=1, keepdim=True)
    sat = 1 + _uniform(n, -cfg.saturation, cfg.saturation, dev)[:, None, None, None]
    x = grey + (x - grey) * sat
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    con = 1 + _uniform(n, -cfg.contrast, cfg.contrast, dev)[:, None, None, None]
    x = mean + (x - mean) * con
    x = x + _uniform(n, -cfg.brightness, cfg.brightness, dev)[:, None, None, None]
    return x.clamp(-1, 1)


def augment_pairs(
    images: torch.Tensor, masks: torch.Tensor, cfg: AugmentConfig | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment a batch of (images in [-1, 1] (n,3,H,W), masks in [0, 1] (n,1,H,W))."""
    cfg = cfg or AugmentConfig()
    images, masks = geometric(images, masks, cfg)
    return photometric(images, cfg), masks.clamp(0, 1)
