"""Collapse detection: small pure functions over mask statistics, so they are easy to test.

What goes wrong in layered GANs, and what each check looks at:
- empty mask ("all background") or full mask ("all foreground"): mean coverage;
- flat grey mask that never commits: binariness (mean |2m - 1|, 1 = fully binary);
- wrong layer assignment (the background draws the object, the mask takes the surroundings): the
  mask hugs the image border, so border coverage clearly exceeds centre coverage;
- blow-ups: any non-finite loss.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch

from engine.config import GuardConfig


@dataclass(frozen=True)
class MaskStats:
    coverage: float
    binariness: float
    border: float  # mean mask on the outer ring (width side/16)
    centre: float  # mean mask on the central half of the image
    # Mean IoU of each binarised mask with the batch's majority mask: ground-truth masks of real
    # objects score 0.35-0.53, a generator stuck on one centred box for every code 0.93-0.95.
    sameness: float = 0.0

    @property
    def border_excess(self) -> float:
        return self.border - self.centre

    def to_dict(self) -> dict[str, float]:
        return {**asdict(self), "border_excess": self.border_excess}


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""
    # A failed shape check (grey mask, swapped layers): those only run after the grace, so a
    # generator saved inside it was never judged on them.
    shape: bool = False


def mask_stats(mask: torch.Tensor) -> MaskStats:
    """Statistics of a batch of masks (N, 1, H, W) in [0, 1]."""
    m = mask.detach().float()
    h, w = m.shape[-2:]
    ring = max(1, min(h, w) // 16)
    border = torch.ones(h, w, dtype=torch.bool, device=m.device)
    border[ring : h - ring, ring : w - ring] = False
    centre = torch.zeros(h, w, dtype=torch.bool, device=m.device)
    centre[h // 4 : h - h // 4, w // 4 : w - w // 4] = True
    return MaskStats(
        coverage=float(m.mean()),
        binariness=float((2 * m - 1).abs().mean()),
        border=float(m[..., border].mean()),
        centre=float(m[..., centre].mean()),
        sameness=sameness(m),
    )


def sameness(masks: torch.Tensor) -> float:
    """Mean IoU between each binarised mask (N, 1, H, W) and their per-pixel majority mask."""
    binary = masks.float() > 0.5
    majority = (binary.float().mean(0, keepdim=True) > 0.5).expand_as(binary)
    inter = (binary & majority).flatten(1).sum(1).float()
    union = (binary | majority).flatten(1).sum(1).float()
    iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
    return float(iou.mean())


def non_finite(losses: Mapping[str, float]) -> str | None:
    """Name the first NaN/inf loss term, or None when all are finite."""
    for name, value in losses.items():
        if not math.isfinite(value):
            return f"loss {name} is {value}"
    return None


def check(stats: MaskStats, step: int, guard: GuardConfig) -> Verdict:
    """Is the generator still healthy at ``step``? Shape checks start after the grace period."""
    values = (stats.coverage, stats.binariness, stats.border, stats.centre)
    if not all(math.isfinite(v) for v in values):
        return Verdict(False, "mask statistics are not finite")
    # An empty or full mask is a collapse well before the shapes settle (perturbgan on the demo
    # folder was all foreground by step 175), so coverage is checked from a quarter of the grace on:
    # otherwise a collapsed generator would be saved as the "good" checkpoint to restore.
    if step < guard.grace_steps // 4:
        return Verdict(True)
    if stats.coverage < guard.min_coverage:
        return Verdict(False, f"mask emptied (coverage {stats.coverage:.3f}): all background")
    if stats.coverage > guard.max_coverage:
        return Verdict(False, f"mask filled the image (coverage {stats.coverage:.3f}): all foreground")
    if step < guard.grace_steps:
        return Verdict(True)
    if stats.binariness < guard.min_binariness:
        return Verdict(False, f"mask stays grey (binariness {stats.binariness:.2f})", shape=True)
    if stats.border_excess > guard.max_border_excess:
        return Verdict(
            False,
            f"mask hugs the border (border {stats.border:.2f} vs centre {stats.centre:.2f}): "
            "the background layer is drawing the object",
            shape=True,
        )
    return Verdict(True)
