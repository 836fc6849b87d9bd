"""Generated pairs judged one by one (issue 18): the prior-agreeing ones are kept, best first.

Before, one mean IoU over 64 samples decided for all of the generator's pairs (horses: 0.45, so
none was used); ILSGAN keeps its best samples instead. These pin the per-sample selection.
"""

from __future__ import annotations

import pytest
import torch

from engine.methods.base import Sample
from engine.train.pair_sources import (
    Bank,
    BankRules,
    agreeing_bank,
    bank_hopeless,
    bank_pairs,
    best_agreeing,
    sample_ious,
)


def test_sample_ious_are_per_pair_and_empty_pairs_agree() -> None:
    a = torch.zeros(3, 1, 2, 2, dtype=torch.bool)
    b = torch.zeros(3, 1, 2, 2, dtype=torch.bool)
    a[0, 0, 0, :] = True
    b[0, 0, :, 0] = True  # 1 shared pixel of 3
    a[1] = True
    b[1] = True
    assert sample_ious(a, b).tolist() == pytest.approx([1 / 3, 1.0, 1.0])


def test_best_agreeing_keeps_the_best_usable_pairs_over_the_floor() -> None:
    ious = torch.tensor([0.9, 0.3, 0.7, 0.95, 0.65, 0.8])
    usable = torch.tensor([True, True, True, False, True, True])
    # 0.95 fails the pair filter, 0.3 is under the floor; the best three of the rest, best first.
    assert best_agreeing(ious, usable, 0.6, 3).tolist() == [0, 5, 2]
    assert best_agreeing(ious, usable, 0.99, 3).tolist() == []
    assert best_agreeing(ious, usable, 0.0, 10).tolist() == [0, 5, 2, 4, 1]


class HalfWrongGenerator:
    """Squares whose side follows the code; for negative codes the mask is the square's complement
    (the object drawn in the background layer), which no judge of the composite agrees with."""

    size = 16

    def sample_codes(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, 2, generator=generator)

    def sample(self, codes: torch.Tensor) -> Sample:
        n, s = codes.shape[0], self.size
        square = torch.zeros(n, 1, s, s)
        for i, c in enumerate(codes[:, 1].tolist()):
            half = int(3 + min(abs(c), 1.0) * 3)
            square[i, :, s // 2 - half : s // 2 + half, s // 2 - half : s // 2 + half] = 1.0
        right = (codes[:, 0] > 0).view(n, 1, 1, 1)
        mask = torch.where(right, square, 1 - square)
        composite = square * 2 - 1
        return Sample(-torch.ones_like(composite), composite, mask, composite.expand(n, 3, s, s))


def seeing_judge(composite: torch.Tensor) -> torch.Tensor:
    return torch.where(composite[:, :1] > 0, 8.0, -8.0)


def test_bank_keeps_only_pairs_whose_layers_are_right() -> None:
    rules = BankRules(candidates=64, chunk=16, keep_share=0.5, min_iou=0.6)
    bank = agreeing_bank(HalfWrongGenerator(), seeing_judge, seed=1, rules=rules)  # type: ignore[arg-type]
    assert bank.candidates == 64
    assert 0 < len(bank) <= 32
    # Every kept mask is the object in its own composite (IoU 1), none the complement.
    agree = sample_ious(bank.composites[:, :1] > 0, bank.masks > 0.5)
    assert bool((agree == 1.0).all())
    # Same seed, same bank: every process of a torchrun run trains on the same pairs.
    again = agreeing_bank(HalfWrongGenerator(), seeing_judge, seed=1, rules=rules)  # type: ignore[arg-type]
    assert torch.equal(bank.masks, again.masks)


def test_bank_pairs_draw_from_the_bank_only() -> None:
    comps = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, 2, 2)
    masks = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2) / 4
    images, drawn = bank_pairs(Bank(comps, masks, 10), seed=0)(12)
    assert images.shape == (12, 3, 2, 2) and drawn.shape == (12, 1, 2, 2)
    assert torch.equal(images[:, :1] / 4, drawn)  # each image with its own mask
    assert set(images[:, 0, 0, 0].tolist()) <= {0.0, 1.0, 2.0, 3.0}


def test_drawing_stops_early_when_too_few_candidates_agree() -> None:
    rules = BankRules(candidates=2048, needed=64, look=256)
    assert not bank_hopeless(0, 128, rules)  # too early to judge
    assert bank_hopeless(1, 256, rules)  # projects to 8 of 2,048: under half of 64
    assert not bank_hopeless(8, 256, rules)  # projects to 64
    assert not bank_hopeless(0, 2048, BankRules(needed=0))  # 0: never stops early


class BlindJudgeCounter:
    """A judge that never agrees with anything (sees no object), counting the candidates."""

    def __init__(self) -> None:
        self.seen = 0

    def __call__(self, composite: torch.Tensor) -> torch.Tensor:
        self.seen += composite.shape[0]
        return torch.full_like(composite[:, :1], -8.0)


def test_bank_stops_drawing_when_the_prior_agrees_with_none() -> None:
    judge = BlindJudgeCounter()
    rules = BankRules(candidates=1024, chunk=64, min_iou=0.6, needed=64, look=128)
    bank = agreeing_bank(HalfWrongGenerator(), judge, seed=2, rules=rules)  # type: ignore[arg-type]
    assert len(bank) == 0 and bank.candidates == 128 and judge.seen == 128
