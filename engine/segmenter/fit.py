"""Training a UNet on (image, mask) pairs: used for the GrabCut bootstrap and for GAN-made pairs.

The loop is driven by a ``sample(n)`` callable so the same code serves a folder of photos with
GrabCut masks and a generator that makes fresh pairs every step. It runs for a time budget (the
user thinks in minutes) or a step count, whichever ends first, and follows the learning rate down a
cosine over that span: the last steps at a small rate average out label noise, which is most of the
segmenter's advantage over its noisy targets.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Generator

import torch
import torch.nn.functional as F

from engine.control import RunControl
from engine.device import autocast, prepare_cuda, to_device
from engine.events import Event, PhaseChanged
from engine.loop import Budget, run_steps
from engine.nets.unet import UNet
from engine.parallel import distributed
from engine.segmenter.augment import AugmentConfig, augment_pairs

log = logging.getLogger(__name__)

Sampler = Callable[[int], tuple[torch.Tensor, torch.Tensor]]

# Learning rate of a fit that starts from the previous segmenter, against fit_unet's 2e-3 from
# scratch: a fresh Adam at 2e-3 moves every weight by about the rate at its first steps, which
# undid the prior's converged weights in a stage of ~100 steps (#18: held-out IoU fell even on
# the training photos, 0.682 -> 0.665 -> 0.655).
FINETUNE_LR = 4e-4
SCRATCH_LR = 2e-3

MIN_LR_FRACTION = 0.05
# A fit from scratch spends this share of its schedule on batches halved in size (a quarter of
# the pixels, about 0.3x the time of a step at 64 px here), then finishes at full size: the coarse
# steps learn where the object is, the full-size ones its edges. Measured on the prior, 40 s of
# fitting at 64 px, both cores busy: horses 0.605 / 0.580 (train / held-out) -> 0.651 / 0.639,
# the demo 0.873 / 0.880 -> 0.920 / 0.931 (bench/RESULTS.md, 2026-12-05 coarse-to-fine).
COARSE_SHARE = 0.5
# Not below this side: at 32 px a 16 px phase lowered the horses' prior (0.616 -> 0.607).
MIN_COARSE_SIDE = 32


def coarse_ok(shape: tuple[int, ...], stride: int) -> bool:
    """Whether a batch of ``shape`` (..., H, W) runs a coarse phase: half of each side at least
    ``MIN_COARSE_SIDE`` and still a multiple of the net's stride (the UNet needs it)."""
    return all(side % (2 * stride) == 0 and side // 2 >= MIN_COARSE_SIDE for side in shape[-2:])


def halve(images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch at half its side: 2x2 means (a soft mask edge stays soft, nothing aliases)."""
    return F.avg_pool2d(images, 2), F.avg_pool2d(masks, 2)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 − soft Dice per image, averaged: whole-object overlap rather than per-pixel odds."""
    prob = torch.sigmoid(logits).flatten(1)
    t = target.flatten(1)
    inter = (prob * t).sum(1)
    return (1 - (2 * inter + eps) / (prob.sum(1) + t.sum(1) + eps)).mean()


def label_weights(masks: torch.Tensor) -> torch.Tensor:
    """Per-pixel confidence of a target in [0, 1]: |2m − 1|. A decided pixel (0 or 1) weighs 1, an
    unlabelled one (0.5, ``relabel.IGNORE``) 0, a generator's grey pixel in between."""
    return (2 * masks - 1).abs()


def weighted_bce(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """BCE averaged over the labelled pixels, each weighted by ``label_weights``: unlabelled
    pixels give no gradient, so the net keeps its own answer there instead of learning a 0.5."""
    w = label_weights(masks)
    bce = F.binary_cross_entropy_with_logits(logits, masks, reduction="none")
    return (bce * w).sum() / w.sum().clamp(min=1e-6)


def fit_unet(
    sample: Sampler,
    unet: UNet,
    device: torch.device,
    budget_s: float | None,
    steps: int | None,
    batch: int,
    control: RunControl,
    phase: str,
    step0: int,
    lr: float = 2e-3,
    dice_weight: float = 0.0,
    augment: AugmentConfig | None = AugmentConfig(),
    confidence_weighted: bool = False,
    coarse_share: float = 0.0,
) -> Generator[Event, None, UNet]:
    """Train ``unet`` in place; yields events, returns the net in eval mode.

    ``sample(n)`` gives images in [-1, 1] (n, 3, H, W) and masks in [0, 1] (n, 1, H, W); H and W
    must be multiples of the net's stride. Stops at the budget, the step count or a stop request
    (checked between steps, so the net is always in a consistent state). Paused time does not count.
    ``confidence_weighted``: the loss is ``weighted_bce`` (self-training targets with unlabelled
    pixels); else plain BCE (the prior's GrabCut masks, where every pixel counts).
    ``coarse_share``: the share of the schedule (time or steps) that trains on ``halve``-d batches
    (``COARSE_SHARE`` for a fit from scratch); ignored where the half size does not fit the net.
    """
    if budget_s is None and steps is None:
        raise ValueError("fit_unet needs a time budget, a step count, or both")
    # channels_last: measured 2.3x faster conv training on CPU (0.35 -> 0.82 it/s, width 16, 64 px).
    unet.to(device, memory_format=torch.channels_last).train()
    # Under torchrun: batch statistics of the global batch, gradients averaged over processes,
    # the budget judged on rank 0's clock; ``batch`` is the global batch (engine/parallel/distributed).
    distributed.convert_batch_norm(unet)
    distributed.check_batch(batch, "segmenter batch")
    opt = torch.optim.Adam(unet.parameters(), lr=lr, betas=(0.9, 0.99))
    amp = autocast(device)
    prepare_cuda(device)
    yield PhaseChanged(step=step0, phase=phase, detail="training the segmenter")

    def step(frac: float) -> dict[str, torch.Tensor]:
        cos = 0.5 * (1 + math.cos(math.pi * frac))
        for group in opt.param_groups:
            group["lr"] = lr * (MIN_LR_FRACTION + (1 - MIN_LR_FRACTION) * cos)
        images, masks = sample(batch)
        images, masks = to_device(images, device), to_device(masks, device).float()
        if frac < coarse_share and coarse_ok(images.shape, unet.stride):
            images, masks = halve(images, masks)
        if augment is not None:
            images, masks = augment_pairs(images, masks, augment)
        images, masks = distributed.shard(images), distributed.shard(masks)
        with amp:
            logits = unet(images.contiguous(memory_format=torch.channels_last))
        logits = logits.float()
        if confidence_weighted:
            bce = weighted_bce(logits, masks)
        else:
            bce = F.binary_cross_entropy_with_logits(logits, masks)
        loss = bce
        # Dice is always reported (an overlap figure the user can read) but not trained on by
        # default: on horses it did not help (bench/RESULTS.md, segmenter ablation).
        dice = dice_loss(logits, masks)
        if dice_weight > 0:
            loss = loss + dice_weight * dice
        opt.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_grads(opt)
        opt.step()
        return {"bce": bce.detach(), "dice": dice.detach()}  # floats only when reported

    yield from run_steps(step, Budget(budget_s, steps), control, phase, step0, own_count=True)
    return unet.eval()

