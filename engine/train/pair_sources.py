"""Where a segmenter stage gets its (image, mask) pairs, and how it decides whom to trust.

Without labels nothing says whether the GAN drew the object in the foreground layer. Two label-free
checks stand in: whether the bootstrap prior (trained on the user's real photos) finds the object
where the generator's mask is (``agreement``), and whether the masks vary with the latent code at
all (``sameness``: a generator stuck on a centred box draws one shape for every code).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from engine.data import RandomCropDataset
from engine.device import to_device
from engine.methods import LayeredGan
from engine.train.collapse import sameness

Sampler = Callable[[int], tuple[torch.Tensor, torch.Tensor]]


def _mean_iou(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over the batch of the IoU of two boolean (N, 1, H, W) masks; empty ∪ empty = 1."""
    inter = (a & b).flatten(1).sum(1).float()
    union = (a | b).flatten(1).sum(1).float()
    iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
    return float(iou.mean())


@torch.no_grad()
def agreement(
    method: LayeredGan, judge: Callable[[torch.Tensor], torch.Tensor], seed: int, n: int = 64
) -> float:
    """Mean IoU between the EMA generator's masks and the judge's masks of its composites."""
    s = method.sample(method.sample_codes(n, torch.Generator().manual_seed(seed)))
    pred = torch.sigmoid(judge(s.composite)).float() > 0.5
    return _mean_iou(pred, s.mask.to(pred.device) > 0.5)


@torch.no_grad()
def generated_sameness(method: LayeredGan, seed: int, n: int = 64) -> float:
    return sameness(method.sample(method.sample_codes(n, torch.Generator().manual_seed(seed))).mask)


def generated_pairs(method: LayeredGan) -> Sampler:
    """n filtered (composite, mask) pairs from the EMA generator; unfiltered if too few pass."""
    from engine.segmenter.pairs import filter_pairs

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        images, masks, got = [], [], 0
        for _ in range(8):
            s = method.sample(method.sample_codes(2 * n))
            keep = filter_pairs(s.composite, s.mask).to(s.mask.device)
            images.append(s.composite[keep])
            masks.append(s.mask[keep])
            got += int(keep.sum())
            if got >= n:
                break
        if got < n:
            s = method.sample(method.sample_codes(n - got))
            images.append(s.composite)
            masks.append(s.mask)
        return torch.cat(images)[:n], torch.cat(masks)[:n]

    return sample


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
