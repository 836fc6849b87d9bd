"""Which (image, mask) pairs are worth training the segmenter on.

A GAN's samples and GrabCut's masks both fail in recognisable ways: an empty mask (the object went
into the background layer), a full mask (everything is "object"), a grey mask that never decided,
or a scatter of specks. Training on those teaches the segmenter the failure, so they are dropped
before they reach ``fit_unet``. Thresholds are loose on purpose: a wrong-but-plausible mask passes,
only the shapes no real object has are removed.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch


@dataclass(frozen=True)
class PairFilter:
    min_coverage: float = 0.02  # fraction of pixels >= 0.5
    max_coverage: float = 0.92
    max_grey: float = 0.25  # fraction of pixels with 0.2 < m < 0.8
    # Largest connected component / all object pixels: "most of the object". Photos with several
    # objects (a few blooms) sit near 0.5; 5 of 85 flower GrabCut masks fell in 0.22-0.52.
    min_main_share: float = 0.5


def mask_ok(mask: np.ndarray, rules: PairFilter) -> bool:
    """One (H, W) float mask in [0, 1]."""
    binary = mask >= 0.5
    coverage = float(binary.mean())
    if not rules.min_coverage <= coverage <= rules.max_coverage:
        return False
    grey = float(((mask > 0.2) & (mask < 0.8)).mean())
    if grey > rules.max_grey:
        return False
    count, _, stats, _ = cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=8)
    areas = stats[1:count, cv2.CC_STAT_AREA]
    return bool(areas.size) and float(areas.max()) >= rules.min_main_share * float(areas.sum())


def filter_pairs(
    images: torch.Tensor, masks: torch.Tensor, rules: PairFilter | None = None
) -> torch.Tensor:
    """Bool (n,) on the masks' device: True for pairs to keep. ``images`` is unused but kept in the
    signature so a later rule can look at the image (e.g. a flat, featureless composite)."""
    del images
    rules = rules or PairFilter()
    arr = masks.detach().float().cpu().numpy()
    if arr.ndim == 4:
        arr = arr[:, 0]
    keep = [mask_ok(m, rules) for m in arr]
    return torch.tensor(keep, dtype=torch.bool, device=masks.device)
