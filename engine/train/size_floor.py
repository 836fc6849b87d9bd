"""PerturbGAN's mask-size floor, read from the user's photos by the label-free prior.

The paper's hinge ``relu(eta - mean(m))`` acts on every sample, with eta picked per dataset
(0.15-0.25). A user cannot pick it, and a fixed eta above many real objects' size pushes each of
them up to eta: on the demo folder, where 61% of the objects cover less than 0.2, a perfect
generator would sit at mean coverage 0.23 instead of the true 0.19, and the measured one sat at
0.26 (bench/RESULTS.md). The floor is only meant to stop empty masks, so it is taken as a low
quantile of the object sizes the prior finds on the photos: small enough that it seldom binds on a
real object, and still far from an empty mask. It never exceeds the configured eta.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from engine.data import ImageCache, to_tensor

log = logging.getLogger(__name__)

QUANTILE = 0.1
LOWEST = 0.05  # below this the hinge hardly resists the "all background" collapse
MAX_PHOTOS = 512  # a fixed, seeded sample of bigger folders: the quantile needs no more
BATCH = 64


@dataclass(frozen=True)
class SizeFloor:
    value: float
    measured: float  # the prior's quantile before clamping
    photos: int

    def describe(self) -> str:
        return (
            f"mask size floor {self.value:.3f} (the prior's {QUANTILE:.0%} quantile of object "
            f"size over {self.photos} photos: {self.measured:.3f})"
        )


@torch.no_grad()
def object_sizes(segmenter: nn.Module, cache: ImageCache, size: int, device: torch.device) -> np.ndarray:
    """Fraction of each photo's centre crop that ``segmenter`` calls object (threshold 0.5)."""
    n = cache.images.shape[0]
    pick = np.arange(n)
    if n > MAX_PHOTOS:
        pick = np.sort(np.random.default_rng(0).choice(n, MAX_PHOTOS, replace=False))
    off = (cache.images.shape[1] - size) // 2
    sizes: list[np.ndarray] = []
    was_training = segmenter.training
    segmenter.eval()
    for start in range(0, len(pick), BATCH):
        crops = cache.images[pick[start : start + BATCH], off : off + size, off : off + size]
        logits = segmenter(to_tensor(crops).to(device))
        sizes.append((logits.float() > 0).flatten(1).float().mean(1).cpu().numpy())
    segmenter.train(was_training)
    return np.concatenate(sizes) if sizes else np.zeros(0, np.float32)


def size_floor(
    segmenter: nn.Module, cache: ImageCache, size: int, device: torch.device, ceiling: float
) -> SizeFloor | None:
    """The floor for the size hinge, or None when there are no photos to measure."""
    sizes = object_sizes(segmenter, cache, size, device)
    if sizes.size == 0:
        return None
    measured = float(np.quantile(sizes, QUANTILE))
    value = float(min(max(measured, LOWEST), ceiling))
    floor = SizeFloor(value=value, measured=measured, photos=int(sizes.size))
    log.info(floor.describe())
    return floor
