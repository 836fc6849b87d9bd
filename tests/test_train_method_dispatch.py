"""`peel train --method redo` goes through the same entry point as the layered GANs."""

from __future__ import annotations

import torch

from engine.cli.main import main
from engine.segmenter.infer import predict_soft
from engine.segmenter.model import load_segmenter


def test_cli_trains_redo_and_leaves_a_segmenter(tiny_demo_folder, tmp_path, capsys):
    run = tmp_path / "redo run"
    code = main(["train", str(tiny_demo_folder), "--out", str(run), "--method", "redo",
                 "--steps", "1", "--size", "32", "--batch", "2", "--device", "cpu",
                 "--threads", "1"])
    assert code == 0, capsys.readouterr().err
    net, info = load_segmenter(run / "segmenter.pt")
    assert info.method == "redo"
    masks = predict_soft(net, [torch.zeros(45, 71, 3, dtype=torch.uint8).numpy()], info.size)
    assert masks[0].shape == (45, 71)


def test_a_redo_run_folder_reads_back_and_resumes(tiny_demo_folder, tmp_path):
    import json

    from engine.config import RunConfig
    from engine.events import Finished, Started
    from engine.train.runner import train

    run = tmp_path / "redo"
    first = RunConfig(folder=str(tiny_demo_folder), out=str(run), method="redo", size=32,
                      batch=2, steps=1, device="cpu", threads=1)
    assert isinstance(list(train(first))[-1], Finished)
    # What the GUI's "Resume run" does: read config.json back, ask for more steps, resume.
    saved = RunConfig.from_dict(json.loads((run / "config.json").read_text()))
    assert saved.method == "redo" and saved.size == 32
    events = list(train(replace_steps(saved, 2), resume=True))
    started = next(e for e in events if isinstance(e, Started))
    assert started.step == 1 and isinstance(events[-1], Finished) and events[-1].step == 2


def replace_steps(config, steps):
    from dataclasses import replace

    return replace(config, steps=steps)


def test_redo_through_train_keeps_threads_and_cadences(tiny_demo_folder, tmp_path):
    """The old ReDO fork handed ReDO only some fields: ``threads`` was undone (every core) and
    the log / preview / checkpoint cadences, checkpoints kept and preview count were dropped."""
    from engine.config import RunConfig
    from engine.events import CheckpointSaved, Finished, Losses, Preview, Started
    from engine.train.runner import train

    run = tmp_path / "redo"
    cfg = RunConfig(folder=str(tiny_demo_folder), out=str(run), method="redo", size=32, batch=2,
                    steps=4, device="cpu", threads=1, log_every=1, preview_every=2,
                    checkpoint_every=2, keep_checkpoints=1, preview_count=3)
    torch.set_num_threads(2)
    events = list(train(cfg))
    assert isinstance(events[-1], Finished) and not events[-1].stopped
    started = next(e for e in events if isinstance(e, Started))
    assert started.device == "cpu (1 thread)"  # --threads 1, not every core
    # ReDO's own steps (its warm start's fit reports in its own phase first)
    assert [e.step for e in events if isinstance(e, Losses) and e.phase == "redo"] == [1, 2, 3, 4]
    previews = [e for e in events if isinstance(e, Preview)]
    assert [e.step for e in previews] == [2, 4] and previews[0].mask.shape[0] == 3
    assert [e.step for e in events if isinstance(e, CheckpointSaved)] == [2, 4]
    assert [p.name for p in (run / "checkpoints").glob("step-*.pt")] == ["step-0000004.pt"]


def test_a_redo_run_folder_from_before_the_registry_still_reads_back():
    """Older ReDO runs saved a flat config: its own settings land in the redo section."""
    from engine.config import RedoSettings, RunConfig

    old = {"folder": "photos", "out": "run", "size": 32, "batch": 4, "minutes": None, "steps": 5,
           "device": "auto", "seed": 0, "mask_width": 8, "restart_until": 0, "log_every": 3,
           "preview_every": 100, "checkpoint_every": 100, "keep_checkpoints": 3,
           "preview_count": 8, "method": "redo"}
    saved = RunConfig.from_dict(old)
    assert saved.method == "redo" and saved.log_every == 3 and saved.steps == 5
    assert saved.redo == RedoSettings(mask_width=8, restart_until=0)
