"""ReDO: trains, checkpoints, resumes, restarts on collapse, and leaves a usable segmenter."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.config import PipelineConfig, RedoSettings, RunConfig
from engine.control import RunControl
from engine.events import CheckpointSaved, Failed, Finished, Preview, Started, WarningEvent
from engine.methods.redo import choose_polarity, train_redo_run
from engine.nets.redo_nets import MaskNet, MaskNetConfig
from engine.runs.checkpoint import list_checkpoints
from engine.segmenter.infer import predict_soft
from engine.segmenter.model import load_segmenter

TINY = {"mask_width": 4, "gen_width": 4, "critic_width": 4, "restart_until": 0}


def redo_config(folder: Path, out: Path, steps: int, **own) -> RunConfig:
    return RunConfig(folder=str(folder), out=str(out), method="redo", size=32, batch=3,
                     steps=steps, log_every=1, preview_every=2, checkpoint_every=2,
                     redo=RedoSettings(**{**TINY, **own}))


def _run(config: RunConfig, **kw) -> list:
    events = list(train_redo_run(config, RunControl(), **kw))
    failed = [e for e in events if isinstance(e, Failed)]
    assert not failed, failed[0].traceback
    return events


def test_redo_trains_resumes_and_yields_a_segmenter(tiny_demo_folder: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = _run(redo_config(tiny_demo_folder, run, steps=2))
    assert isinstance(first[-1], Finished) and first[-1].step == 2
    assert any(isinstance(e, Preview) for e in first)
    assert [p.name for p in list_checkpoints(run)] == ["step-0000002.pt"]
    payload = torch.load(list_checkpoints(run)[0], weights_only=True)
    assert payload["step"] == 2 and payload["method"] == "redo"

    second = _run(redo_config(tiny_demo_folder, run, steps=4), resume=True)
    started = next(e for e in second if isinstance(e, Started))
    assert started.step == 2  # continues, not from 0
    assert second[-1].step == 4
    assert any(isinstance(e, CheckpointSaved) and e.path.endswith("step-0000004.pt") for e in second)

    net, info = load_segmenter(run / "segmenter.pt")  # weights_only inside
    assert isinstance(net, MaskNet) and info.method == "redo" and info.size == 32
    photo = np.random.default_rng(0).integers(0, 256, (333, 517, 3), dtype=np.uint8)
    (mask,) = predict_soft(net, [photo], info.size)
    assert mask.shape == (333, 517) and 0.0 <= mask.min() <= mask.max() <= 1.0


def test_resume_refuses_a_differently_shaped_run(tiny_demo_folder: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    _run(redo_config(tiny_demo_folder, run, steps=1))
    events = list(train_redo_run(redo_config(tiny_demo_folder, run, steps=2, mask_width=8),
                                 resume=True))
    assert isinstance(events[-1], Failed) and "mask_width" in events[-1].error


def test_restart_rule_fires_on_an_empty_mask(
    tiny_demo_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A mask net that puts everything in the background: region "object" is empty.
    monkeypatch.setattr(MaskNet, "forward", lambda self, x: self.head.bias.view(1, 1, 1, 1) * 0
                        - 20 + 0 * x[:, :1])
    cfg = redo_config(tiny_demo_folder, tmp_path / "run", steps=2,
                      restart_every=1, restart_until=5, max_restarts=2)
    events = _run(cfg)
    collapses = [e for e in events if isinstance(e, WarningEvent) and e.kind == "collapse"]
    assert len(collapses) == 3  # two restarts, then "restarts used up"
    assert "re-initialised" in collapses[0].message and "seed 1000" in collapses[0].message
    assert "used up" in collapses[-1].message
    assert isinstance(events[-1], Finished) and events[-1].summary["restarts"] == 2


def test_polarity_calls_the_centre_region_the_object() -> None:
    mask = torch.zeros(2, 1, 32, 32)
    mask[:, :, 8:24, 8:24] = 1.0
    assert choose_polarity(mask) == 1.0
    assert choose_polarity(1 - mask) == -1.0
    net = MaskNet(MaskNetConfig(width=4))
    x = torch.rand(1, 3, 64, 96) * 2 - 1
    before = net(x)
    net.polarity.fill_(-1.0)
    assert torch.allclose(net(x), -before)


def _iou_on_folder(run: Path, folder: Path) -> float:
    from engine.imageio import read_mask, read_rgb, scan_images

    net, info = load_segmenter(run / "segmenter.pt")
    ious = []
    for photo in scan_images(folder):
        truth = read_mask(folder / "masks" / photo.name) > 127
        (soft,) = predict_soft(net, [read_rgb(photo)], info.size)
        pred = soft > 0.5
        ious.append((pred & truth).sum() / max(1, (pred | truth).sum()))
    return float(np.mean(ious))


def test_a_warm_started_mask_net_starts_from_grabcut_and_keeps_that_start(
    tiny_demo_folder: Path, tmp_path: Path
) -> None:
    # Cold (the paper's start), a CPU's minutes of ReDO left a blotch over half of each photo.
    # Warm, the mask net first fits GrabCut's masks of the photos: a usable segmenter from the
    # start, kept in the checkpoint for resumes and restarts.
    warm_run, cold_run = tmp_path / "warm", tmp_path / "cold"
    events = _run(redo_config(tiny_demo_folder, warm_run, steps=40, mask_width=8))
    assert any(getattr(e, "phase", "") == "warm-start" for e in events)
    assert len(list((warm_run / "bootstrap" / "masks").glob("*.png"))) == 12
    payload = torch.load(list_checkpoints(warm_run)[-1], weights_only=True)
    assert "warm_mask_net" in payload
    cold = replace(redo_config(tiny_demo_folder, cold_run, steps=40, mask_width=8),
                   pipeline=PipelineConfig(bootstrap=False))  # what --no-bootstrap gives
    _run(cold)
    assert not (cold_run / "bootstrap").exists()
    warm, cold = _iou_on_folder(warm_run, tiny_demo_folder), _iou_on_folder(cold_run, tiny_demo_folder)
    assert warm > 0.5 and warm > cold + 0.2, (warm, cold)


def test_the_anchor_keeps_the_mask_net_near_the_warm_start(tmp_path: Path) -> None:
    """With ``anchor`` the G step also pulls the mask net's masks towards a frozen copy of the
    warm start's mask net; without it (the paper's game alone) nothing does, and on the flowers
    the game took a warm start of 0.921 to 0.856."""
    from engine.methods.redo import Redo

    images = [torch.rand(4, 3, 32, 32) * 2 - 1 for _ in range(3)]
    drift = {}
    for weight in (0.0, 100.0):
        torch.manual_seed(0)
        cfg = redo_config(tmp_path, tmp_path / "run", steps=1, lr_mask=1e-3, anchor=weight)
        model = Redo(cfg, torch.device("cpu"))
        warm = {k: v.clone() for k, v in model.mask_net.state_dict().items()}
        model.set_anchor(warm)
        assert (model.anchor_net is not None) == (weight > 0)
        with torch.no_grad():
            start = model.masks(images[2])
        for _ in range(30):
            losses = model.step(*images)
        assert ("anchor" in losses) == (weight > 0)
        with torch.no_grad():
            drift[weight] = float((model.masks(images[2]) - start).abs().mean())
    assert drift[100.0] < 0.6 * drift[0.0], drift
