"""Does colour separate this folder's objects from their backgrounds? Then GrabCut's snapping pays.

A self-training round learns from the segmenter's masks snapped to the photo's edges by GrabCut,
which is a colour model: it moves an outline to where the object's colours stop. Where colour
does separate object and background, the snapped labels are far better than the segmenter's own
(demo at 64 px: 0.913 -> 0.974 IoU with the ground truth) and a round lifts the segmenter (+0.03
held-out). Where it does not (horses: brown coats on brown fields), the snapped labels are no
better (0.726 -> 0.724), the round learns GrabCut's own mistakes, and every round variant
measured lowered the held-out IoU (-0.01 to -0.03 at 32 and 64 px): bench/RESULTS.md,
2026-12-05. No label-free check of the round's result told the two apart (agreement with
GrabCut, GrabCut fixed points, flip consistency, confidence), so the decision is taken before
the round, from the photos.

The measure, with no label: in each photo, colour histograms of the GrabCut mask's object and
background, and the share of pixels whose colour alone puts them on the mask's side. Folder
means on the dev folders' training photos: demo 0.987, flowers 0.946, horses 0.900; means of 12
photos spread over each folder stayed on their side of ``SNAP_MIN_SEPARATION``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

BINS = 8  # per channel: 512 colours, enough for a photo's few thousand working pixels
SNAP_MIN_SEPARATION = 0.925
# A mask with less than this share of object or background says nothing about colour.
MIN_SIDE_SHARE = 0.02


def colour_separation(rgb: np.ndarray, mask: np.ndarray) -> float | None:
    """Share of pixels whose colour's object/background histogram vote matches ``mask`` (uint8,
    >= 128 object; same height and width as ``rgb``), or None when the mask is nearly all one
    side (GrabCut failed on that photo: no evidence either way)."""
    fg = mask >= 128
    share = float(fg.mean())
    if not MIN_SIDE_SHARE <= share <= 1 - MIN_SIDE_SHARE:
        return None
    q = (rgb.astype(np.int32) * BINS) // 256
    colour = (q[..., 0] * BINS + q[..., 1]) * BINS + q[..., 2]
    n = BINS**3
    h_fg = np.bincount(colour[fg], minlength=n).astype(np.float64)
    h_bg = np.bincount(colour[~fg], minlength=n).astype(np.float64)
    # Counts already carry the prior share of each side: a colour votes for the side it is
    # more often on.
    vote_fg = (h_fg > h_bg)[colour]
    return float(np.mean(vote_fg == fg))


def folder_separation(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> float | None:
    """Mean ``colour_separation`` over (photo, GrabCut mask) pairs that say something; None if none."""
    values = [v for rgb, mask in pairs if (v := colour_separation(rgb, mask)) is not None]
    return float(np.mean(values)) if values else None


def snapping_pays(separation: float | None) -> bool:
    """Whether self-training rounds on GrabCut-snapped labels are worth their time here. Unknown
    (no measure) keeps the rounds, as before the measure existed."""
    return separation is None or separation >= SNAP_MIN_SEPARATION
