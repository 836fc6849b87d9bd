"""bootstrap_prior: GrabCut masks cached per photo, a frozen UNet returned, prior.pt reused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from train_helpers import drain as run

from engine.control import RunControl
from engine.data import load_folder
from engine.events import PhaseChanged, Progress
from engine.nets.unet import UNet
from engine.segmenter import bootstrap
from engine.segmenter.bootstrap import bootstrap_prior, grabcut_masks
from engine.segmenter.model import load_segmenter

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def details(events) -> list[str]:
    return [e.detail for e in events if isinstance(e, PhaseChanged)]


def test_prior_trained_saved_and_masks_cached(
    tiny_demo_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bootstrap, "BATCH", 8)
    cache = load_folder(tiny_demo_folder, 32)
    run_dir = tmp_path / "run"
    cpu = torch.device("cpu")
    events, net = run(bootstrap_prior(cache, run_dir, 32, cpu, 2.0, RunControl(), 5))
    assert isinstance(net, UNet) and not net.training
    assert not any(p.requires_grad for p in net.parameters())
    assert any("GrabCut masks for 12 photos" in d for d in details(events))
    assert any(isinstance(e, Progress) and e.phase == "bootstrap" and e.step > 5 for e in events)
    # GrabCut's progress counts photos (the run's step stands still meanwhile), the fit's steps.
    grabcut = [e for e in events if isinstance(e, Progress) and e.unit == "photos"]
    assert grabcut and grabcut[-1].done == grabcut[-1].total == 12 and grabcut[-1].step == 5
    assert [e.done for e in events if isinstance(e, Progress) and e.unit == "steps"][-1] > 0
    prior = run_dir / "bootstrap" / "prior.pt"
    _, info = load_segmenter(prior)
    assert info.size == 32 and info.method == bootstrap.METHOD
    masks = sorted((run_dir / "bootstrap" / "masks").glob("*.png"))
    assert len(masks) == 12
    mtimes = [m.stat().st_mtime_ns for m in masks]

    # A complete prior is reused as it is.
    events, again = run(bootstrap_prior(cache, run_dir, 32, cpu, 2.0, RunControl(), 0))
    assert any(d.startswith("reusing") for d in details(events))
    assert torch.equal(again.head.weight, net.head.weight)

    # Without prior.pt (e.g. stopped mid-training) it retrains but GrabCuts nothing again.
    prior.unlink()
    # (With a step cap: a generous budget, and it still ends after 2 steps.)
    events, _ = run(bootstrap_prior(cache, run_dir, 32, cpu, 600.0, RunControl(), 0, steps=2))
    assert not any("GrabCut masks for" in d for d in details(events))
    assert [e.step for e in events if isinstance(e, Progress)][-1] == 2
    assert [m.stat().st_mtime_ns for m in masks] == mtimes
    assert prior.exists()


def test_stop_returns_untrained_prior_without_saving(
    tiny_demo_folder: Path, tmp_path: Path
) -> None:
    cache = load_folder(tiny_demo_folder, 32)
    control = RunControl()
    control.stop()
    _, net = run(bootstrap_prior(cache, tmp_path, 32, torch.device("cpu"), 60.0, control, 0))
    assert isinstance(net, UNet)
    assert not (tmp_path / "bootstrap" / "prior.pt").exists()


def test_worker_processes_compute_and_edited_photo_is_redone(
    tiny_demo_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bootstrap, "INLINE_MAX", 0)  # force the process pool even for 3 photos
    paths = sorted(tiny_demo_folder.glob("*.png"))[:3]
    cache = load_folder(tiny_demo_folder, 32, paths=paths)
    stats: dict[str, int] = {}
    _, masks = run(grabcut_masks(cache, tmp_path, 60.0, RunControl(), 0, stats))
    assert stats == {"reused": 0, "computed": 3}
    assert sorted(masks) == [0, 1, 2] and masks[0].shape == (64, 64)
    assert set(masks[0].ravel().tolist()) <= {0, 255} and masks[0].any()

    paths[1].write_bytes(paths[2].read_bytes())  # the user replaced a photo: new content, new key
    _, masks = run(grabcut_masks(cache, tmp_path, 60.0, RunControl(), 0, stats))
    assert stats == {"reused": 2, "computed": 1}


def test_grabcut_cut_short_leaves_no_work_behind(tmp_path):
    """A GrabCut pass stopped at its deadline must not go on in the background: the pool was a
    local of a generator, collected before its manager thread cancelled the queued photos, so
    every photo was still computed (on the core the training was pinned to) and the process
    waited for them at exit."""
    import os
    import time

    from engine.control import RunControl
    from engine.data import load_folder
    from engine.demo import make_demo_folder
    from engine.segmenter import bootstrap

    make_demo_folder(tmp_path / "photos", count=60, size=96, seed=3)
    cache = load_folder(str(tmp_path / "photos"), 32)
    control = RunControl()
    gen = bootstrap.grabcut_masks(cache, tmp_path / "masks", 0.0, control, 0)
    control.stop()  # the first finished photo ends the pass
    try:
        while True:
            next(gen)
    except StopIteration:
        pass
    time.sleep(3.0)  # queued photos, had they not been cancelled, would land meanwhile
    written = len(os.listdir(tmp_path / "masks"))
    assert written <= 2 * os.cpu_count() + 4, written  # the running ones and the queue's few
