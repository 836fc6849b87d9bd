"""Samplers a segmenter fit draws from that are not tied to one method: the user's photos with a
teacher's masks as targets, and a mix of two samplers in every batch (the pipeline's segmenter
stages and latentdir's warm-started fit share them)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from engine.data import RandomCropDataset
from engine.device import to_device
from engine.segmenter.fit import Sampler


def labelled_photos(
    dataset: RandomCropDataset, teacher: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device, seed: int,
) -> Sampler:
    """Random crops of the user's photos with the teacher's thresholded masks as targets."""
    rng = np.random.default_rng(seed)

    @torch.no_grad()
    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        images = to_device(dataset.sample_batch(n, rng), device)
        return images, (torch.sigmoid(teacher(images)).float() > 0.5).float()

    return sample


def mixed(first: Sampler, second: Sampler, second_share: float) -> Sampler:
    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        k = int(round(n * second_share))
        a_img, a_msk = first(n - k)
        b_img, b_msk = second(k)
        return (torch.cat([a_img.to(b_img.device), b_img]),
                torch.cat([a_msk.to(b_msk.device), b_msk]))

    return sample
