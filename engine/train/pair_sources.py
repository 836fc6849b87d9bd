"""Where a segmenter stage gets its (image, mask) pairs, and how it decides whom to trust.

Without labels nothing says whether the GAN drew the object in the foreground layer. Two label-free
checks stand in: whether the bootstrap prior (trained on the user's real photos) finds the object
where the generator's mask is (``agreement``), and whether the masks vary with the latent code at
all (``sameness``: a generator stuck on a centred box draws one shape for every code).

The agreement is also judged per sample (``agreeing_bank``): a generator whose layers are right for
some codes and wrong for others gave a mean IoU under the gate and all its pairs were refused
(horses, #18: 0.45). Like ILSGAN, which keeps the best 8,000 of 50,000 samples, the stage draws
many candidates once, scores each against the prior and keeps the best that agree, and trains on
those: the generator's mask is exact for its own composite, so an agreeing pair is a sharper label
than the prior's mask of a photo.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from engine.methods import LayeredGan
from engine.segmenter.fit import Sampler
from engine.train.collapse import sameness

log = logging.getLogger(__name__)


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


def sample_ious(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(N,) IoU of each pair of boolean (N, 1, H, W) masks; empty ∪ empty = 1."""
    inter = (pred & target).flatten(1).sum(1).float()
    union = (pred | target).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def best_agreeing(ious: torch.Tensor, usable: torch.Tensor, min_iou: float, keep: int) -> torch.Tensor:
    """Indices of at most ``keep`` candidates, best IoU first, among those ``usable`` (the pair
    filter passed) whose IoU with the judge is at least ``min_iou``. Pure: ties keep draw order."""
    ok = usable & (ious >= min_iou)
    idx = torch.nonzero(ok).flatten()
    order = torch.sort(ious[idx], descending=True, stable=True).indices
    return idx[order][:keep]


@dataclass(frozen=True)
class BankRules:
    """How many generated candidates are judged, and which are kept (``agreeing_bank``)."""

    candidates: int = 2048  # drawn once per stage, in chunks of ``chunk``
    chunk: int = 128
    keep_share: float = 0.25  # at most this share of the candidates is kept: the best ones
    min_iou: float = 0.6  # and only those whose masks the prior agrees with at least this much
    max_seconds: float | None = None  # stop drawing candidates after this long (the stage's time)
    # Stop drawing once, after ``look`` candidates, the share that agrees projects to under half
    # of ``needed`` over all candidates: the stage would refuse the pairs anyway (horses, 20 min:
    # 3 of 1,152 agreed, and the drawing took 49 s of a 5-minute stage). 0: never stop early.
    needed: int = 0
    look: int = 256


def bank_hopeless(agreeing: int, drawn: int, rules: BankRules) -> bool:
    """True when ``agreeing`` of ``drawn`` candidates so far project to under half of
    ``rules.needed`` over ``rules.candidates`` (pure)."""
    if rules.needed <= 0 or drawn < rules.look or drawn == 0:
        return False
    return agreeing / drawn * rules.candidates < rules.needed / 2


@dataclass(frozen=True)
class Bank:
    composites: torch.Tensor  # (K, 3, H, W) in [-1, 1]
    masks: torch.Tensor  # (K, 1, H, W) in [0, 1]
    candidates: int  # how many were judged

    def __len__(self) -> int:
        return int(self.masks.shape[0])


@torch.no_grad()
def agreeing_bank(
    method: LayeredGan, judge: Callable[[torch.Tensor], torch.Tensor], seed: int, rules: BankRules
) -> Bank:
    """The generated pairs the judge agrees with, best first (see the module docstring).

    Codes come from a seeded generator, so every process of a torchrun run builds the same bank.
    """
    from engine.segmenter.pairs import filter_pairs

    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    comps, masks, ious, usable = [], [], [], []
    drawn = passed = 0
    while drawn < rules.candidates:
        n = min(rules.chunk, rules.candidates - drawn)
        s = method.sample(method.sample_codes(n, gen))
        pred = torch.sigmoid(judge(s.composite)).float() > 0.5
        binary = s.mask.to(pred.device) > 0.5
        ious.append(sample_ious(pred, binary).cpu())
        usable.append(filter_pairs(s.composite, s.mask).cpu())
        comps.append(s.composite.half())  # half: 2,048 candidates at 64 px in 50 MB, not 100
        masks.append(s.mask.half())
        drawn += n
        if rules.max_seconds is not None and time.perf_counter() - t0 > rules.max_seconds:
            break
        agreeing = int((usable[-1] & (ious[-1] >= rules.min_iou)).sum())
        passed += agreeing
        if bank_hopeless(passed, drawn, rules):
            break
    all_ious, all_ok = torch.cat(ious), torch.cat(usable)
    pick = best_agreeing(all_ious, all_ok, rules.min_iou, int(rules.keep_share * drawn))
    log.info("generated pairs: %d of %d candidates agree with the prior (IoU >= %.2f; "
             "median IoU %.2f), %.1f s", len(pick), drawn, rules.min_iou,
             float(all_ious.median()), time.perf_counter() - t0)
    comp = torch.cat(comps)[pick.to(comps[0].device)].float()
    mask = torch.cat(masks)[pick.to(masks[0].device)].float()
    return Bank(comp, mask, drawn)


def bank_pairs(bank: Bank, seed: int) -> Sampler:
    """Random pairs (with replacement) from a bank; the fit's augmentation varies them."""
    gen = torch.Generator().manual_seed(seed)

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(len(bank), (n,), generator=gen).to(bank.masks.device)
        return bank.composites[idx], bank.masks[idx]

    return sample


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
