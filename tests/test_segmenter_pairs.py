"""filter_pairs: failed masks (empty, full, grey, specks) are dropped, plausible ones kept."""

from __future__ import annotations

import numpy as np
import torch

from engine.segmenter.pairs import filter_pairs


def _disc(size: int = 64, r: int = 14) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    return (((yy - 32) ** 2 + (xx - 30) ** 2) < r**2).astype(np.float32)


def _batch(*masks: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    m = torch.from_numpy(np.stack(masks)).float().unsqueeze(1)
    return torch.zeros(len(masks), 3, 64, 64), m


def test_keeps_good_and_drops_failures() -> None:
    good = _disc()
    soft_edge = np.clip(_disc(r=16) * 0.9 + 0.05, 0, 1)  # nearly binary, slightly soft
    two_objects = np.maximum(_disc(r=12), np.roll(_disc(r=5), 24, axis=1))  # main part dominates
    empty = np.zeros((64, 64), np.float32)
    tiny = np.zeros((64, 64), np.float32)
    tiny[30:32, 30:32] = 1  # 4 pixels: nearly empty
    full = np.ones((64, 64), np.float32)
    full[:2, :2] = 0  # nearly full
    grey = np.full((64, 64), 0.5, np.float32)  # undecided
    rng = np.random.default_rng(0)
    specks = np.zeros((64, 64), np.float32)
    for y, x in rng.integers(0, 62, size=(60, 2)):
        specks[y : y + 2, x : x + 2] = 1  # many small components, none dominant
    keep = filter_pairs(*_batch(good, soft_edge, two_objects, empty, tiny, full, grey, specks))
    assert keep.dtype == torch.bool and keep.shape == (8,)
    assert keep.tolist() == [True, True, True, False, False, False, False, False]


def test_accepts_masks_without_channel_axis_and_big_objects() -> None:
    big = np.zeros((64, 64), np.float32)
    big[4:60, 6:58] = 1  # a close-up: ~71% coverage is still an object
    masks = torch.from_numpy(np.stack([big, _disc()]))
    assert filter_pairs(torch.zeros(2, 3, 64, 64), masks).tolist() == [True, True]
