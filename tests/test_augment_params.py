"""Issue #14: the augmentations and the gradient penalty take their random draws as arguments
(kornia-style): a ``sample_*`` function draws them from a given generator, the tensor function
applies them and draws nothing, and a sharded draw (``rows``) splits a parameter set by sample."""

from __future__ import annotations

import torch

from engine.augment import (
    contrast,
    diff_augment,
    sample_contrast,
    sample_diff_augment,
    sample_shift,
    shift,
)
from engine.losses import gradient_penalty, sample_interpolation
from engine.parallel import distributed
from engine.segmenter.augment import AugmentConfig, geometric, photometric, sample_augment

CPU = torch.device("cpu")


def test_a_generator_makes_the_draws_and_applying_them_draws_nothing():
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    a = sample_diff_augment(4, 16, 16, CPU, x.dtype, torch.Generator().manual_seed(3))
    b = sample_diff_augment(4, 16, 16, CPU, x.dtype, torch.Generator().manual_seed(3))
    torch.manual_seed(0)
    before = torch.get_rng_state()
    y = diff_augment(x, a)
    assert torch.equal(y, diff_augment(x, b))  # same draws, same images
    assert torch.equal(torch.get_rng_state(), before)  # the global stream is untouched
    assert not torch.equal(y, x)


def test_shift_and_contrast_apply_exactly_what_they_are_given():
    x = torch.arange(16.0).view(1, 1, 4, 4) + 1
    moved = shift(x, sample_shift(1, 4, 0.0, CPU))  # rounds to 0 pixels: no move
    assert torch.equal(moved, x)
    k = sample_contrast(1, 1.0, 1.0, CPU, x.dtype, torch.Generator().manual_seed(1))
    flat = torch.full((1, 1, 4, 4), 0.5)
    assert torch.equal(contrast(flat, k), flat)


def test_the_gradient_penalty_is_a_function_of_its_interpolation_weights():
    w = torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(2))

    def critic(z: torch.Tensor) -> torch.Tensor:
        return (z * w).sum((1, 2, 3))

    real, fake = torch.zeros(2, 3, 8, 8), torch.ones(2, 3, 8, 8)
    eps = sample_interpolation(2, CPU, torch.float32, torch.Generator().manual_seed(4))
    # A linear critic's gradient is w whatever the interpolate: the penalty is (|w| - 1)^2.
    expected = (w.norm() - 1) ** 2
    assert torch.allclose(gradient_penalty(critic, real, fake, eps), expected)


def test_segmenter_augmentation_applies_its_draws_to_images_and_masks_alike():
    cfg = AugmentConfig(scale=(1.0, 1.0), shift=0.0, flip=True)
    params = sample_augment(8, cfg, CPU, torch.Generator().manual_seed(5))
    images = torch.rand(8, 3, 16, 16) * 2 - 1
    masks = torch.zeros(8, 1, 16, 16)
    masks[..., :8] = 1.0  # left half
    _, warped = geometric(images, masks, params)
    flipped = params.sign < 0
    assert flipped.any() and (~flipped).any()
    assert torch.allclose(warped[flipped], masks[flipped].flip(-1), atol=1e-5)
    assert torch.allclose(warped[~flipped], masks[~flipped], atol=1e-5)
    assert photometric(images, params).shape == images.shape


def test_a_sharded_draw_keeps_this_ranks_rows_of_every_parameter(monkeypatch):
    monkeypatch.setattr(distributed, "_sharded_draws", True)
    monkeypatch.setattr(distributed, "_world", distributed.World(rank=1, size=2))
    whole = sample_diff_augment(6, 16, 16, CPU, torch.float32, torch.Generator().manual_seed(6))
    mine = distributed.rows(3, lambda m: sample_diff_augment(
        m, 16, 16, CPU, torch.float32, torch.Generator().manual_seed(6)))
    assert torch.equal(mine.brightness, whole.brightness[3:])
    assert torch.equal(mine.shift.dx, whole.shift.dx[3:])
    assert torch.equal(mine.cut_x, whole.cut_x[3:])
