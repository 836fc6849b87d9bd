"""Self-training labels: GrabCut started from a rough teacher mask must land closer to the object."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from engine.control import RunControl
from engine.data import load_folder, square_resize
from engine.demo import make_demo_folder
from engine.imageio import read_mask
from engine.segmenter.relabel import IGNORE, refined_labels


class CentredDisc(nn.Module):
    """A 'segmenter' that always answers a centred disc: right place, wrong shape."""

    stride = 16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        yy, xx = torch.meshgrid(torch.arange(h) - (h - 1) / 2, torch.arange(w) - (w - 1) / 2,
                                indexing="ij")
        inside = (yy**2 + xx**2).sqrt() < 0.3 * min(h, w)
        return torch.where(inside, 4.0, -4.0).expand(x.shape[0], 1, h, w).clone()


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return np.count_nonzero(a & b) / max(1, np.count_nonzero(a | b))


def _drain(gen):
    events = []
    try:
        while True:
            events.append(next(gen))
    except StopIteration as stop:
        return events, stop.value


@pytest.mark.usefixtures("one_torch_thread")
def test_refined_labels_beat_the_teacher(tmp_path: Path) -> None:
    """Where the targets give a label, it is right more often than the teacher's mask: GrabCut
    fixes the outline, and where it contradicts a decided teacher the pixel is left unlabelled."""
    folder = tmp_path / "demo"
    make_demo_folder(folder, count=10, size=128, seed=3)
    cache = load_folder(folder, 64)
    side = cache.images.shape[1]
    teacher = CentredDisc()
    events, labels = _drain(
        refined_labels(cache, teacher, 64, torch.device("cpu"), RunControl(), "test", 0)
    )
    assert labels is not None
    images, masks = labels
    assert images.shape[1:] == (side, side, 3) and masks.shape[1:] == (side, side)
    assert set(np.unique(masks)) <= {0, IGNORE, 255}
    assert any(e.phase == "test" for e in events)

    truth = {p.name: square_resize(read_mask(folder / "masks" / p.name), side) > 127
             for p in cache.paths}
    teacher_mask = CentredDisc()(torch.zeros(1, 3, side, side))[0, 0].numpy() > 0
    by_image = {img.tobytes(): i for i, img in enumerate(cache.images)}
    before, after, labelled = [], [], []
    for img, mask in zip(images, masks, strict=True):
        gt = truth[cache.paths[by_image[img.tobytes()]].name]
        known = mask != IGNORE
        before.append(float(np.mean(teacher_mask == gt)))
        after.append(float(np.mean((mask[known] == 255) == gt[known])))
        labelled.append(float(known.mean()))
    assert np.mean(after) > np.mean(before) + 0.03, (np.mean(before), np.mean(after))
    assert np.mean(labelled) > 0.5  # most pixels keep a label


def test_stop_request_returns_none(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    make_demo_folder(folder, count=3, size=128, seed=4)
    cache = load_folder(folder, 64)
    control = RunControl()
    control.stop()
    _, labels = _drain(refined_labels(cache, CentredDisc(), 64, torch.device("cpu"), control, "t", 0))
    assert labels is None


def test_at_its_deadline_refinement_stops_and_the_rest_keep_the_teachers_masks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relabel pass counts against its stage's time (issue #16): past ``deadline_s`` it hands
    over after the photo in hand, with the teacher's own masks for the photos not reached."""
    from engine.segmenter import relabel

    calls = []
    real = relabel.refine_centre
    monkeypatch.setattr(relabel, "refine_centre", lambda task: calls.append(1) or real(task))
    folder = tmp_path / "demo"
    make_demo_folder(folder, count=4, size=128, seed=5)
    cache = load_folder(folder, 64)
    _, labels = _drain(refined_labels(cache, CentredDisc(), 64, torch.device("cpu"),
                                      RunControl(), "t", 0, deadline_s=0.0))
    assert labels is not None and len(labels[1]) == 4  # every photo keeps a label
    assert len(calls) == 1  # only the first photo was refined
