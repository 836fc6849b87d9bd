"""The size floor PerturbGAN's hinge reads from the photos: a low quantile of the prior's sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from engine.data import ImageCache
from engine.train import size_floor as sf


class BrightIsObject(nn.Module):
    """A stand-in prior: a pixel is object where its red channel is positive."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1] * 10


def cache_with_object_sizes(sizes: list[float], side: int = 36, crop: int = 32) -> ImageCache:
    images = np.zeros((len(sizes), side, side, 3), np.uint8)
    off = (side - crop) // 2
    for i, s in enumerate(sizes):
        rows = int(round(s * crop))  # whole rows of the centre crop are object
        images[i, off : off + rows, off : off + crop, 0] = 255
    return ImageCache(images=images, paths=[], bad=[])


def test_floor_is_the_low_quantile_of_what_the_prior_sees() -> None:
    sizes = [r / 32 for r in range(4, 24)]  # 20 photos, 0.125 .. 0.72
    cache = cache_with_object_sizes(sizes)
    measured = sf.object_sizes(BrightIsObject(), cache, 32, torch.device("cpu"))
    np.testing.assert_allclose(measured, sizes, atol=1e-6)
    floor = sf.size_floor(BrightIsObject(), cache, 32, torch.device("cpu"), ceiling=0.5)
    assert floor is not None and floor.photos == 20
    assert floor.value == pytest.approx(np.quantile(sizes, sf.QUANTILE))
    assert "floor" in floor.describe()


def test_floor_is_clamped_between_lowest_and_the_configured_eta() -> None:
    tiny = cache_with_object_sizes([1 / 32] * 10)
    low = sf.size_floor(BrightIsObject(), tiny, 32, torch.device("cpu"), ceiling=0.2)
    assert low is not None and low.value == sf.LOWEST and low.measured == pytest.approx(1 / 32)
    big = cache_with_object_sizes([0.75] * 10)
    high = sf.size_floor(BrightIsObject(), big, 32, torch.device("cpu"), ceiling=0.2)
    assert high is not None and high.value == 0.2


def test_no_photos_no_floor() -> None:
    empty = ImageCache(images=np.zeros((0, 36, 36, 3), np.uint8), paths=[], bad=[])
    assert sf.size_floor(BrightIsObject(), empty, 32, torch.device("cpu"), ceiling=0.2) is None
