"""The trainer end to end on a tiny folder: outputs on disk, stop/resume, pause, bad checkpoints."""

from __future__ import annotations

import io
import json
import threading
import time

import cv2
import torch
from train_helpers import run_all, tiny_config

from engine.config import RunConfig
from engine.control import RunControl
from engine.events import (
    CheckpointSaved,
    Failed,
    Finished,
    Losses,
    Preview,
    Progress,
    Started,
)
from engine.runs import checkpoint as ckpt
from engine.train.runner import train


def test_few_steps_write_checkpoints_previews_and_metrics(tiny_demo_folder, tmp_path):
    cfg = tiny_config(tiny_demo_folder, tmp_path / "run")
    events = run_all(cfg)
    assert isinstance(events[0], Started) and events[0].step == 0
    assert not [e for e in events if isinstance(e, Failed)]
    assert isinstance(events[-1], Finished) and not events[-1].stopped and events[-1].step == 6
    run = tmp_path / "run"
    assert RunConfig.from_dict(json.loads((run / "config.json").read_text())) == cfg
    rolling = ckpt.list_checkpoints(run)
    assert [p.name for p in rolling] == ["step-0000002.pt", "step-0000004.pt", "step-0000006.pt"]
    assert ckpt.good_path(run).exists()
    grid = cv2.imread(str(run / "previews" / "step-0000004.png"))
    assert grid.shape == (4 * 32 + 3 * 2, 3 * 32 + 2 * 2, 3)
    preview = [e for e in events if isinstance(e, Preview)][-1]
    assert preview.mask.shape == (3, 32, 32) and preview.mask.dtype.name == "uint8"
    assert preview.composite.shape == (3, 32, 32, 3)
    assert 0.0 < preview.coverage < 1.0
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "g_total" in x] == [2, 4, 6]
    for key in ("mask_coverage", "mask_binariness", "mask_border_excess", "d_total", "mi_x"):
        assert key in lines[-1]
    assert any(isinstance(e, Progress) and e.steps_per_s > 0 for e in events)


def test_checkpoints_load_with_weights_only(tiny_demo_folder, tmp_path):
    cfg = tiny_config(tiny_demo_folder, tmp_path / "run", steps=2)
    run_all(cfg)
    for path in (ckpt.list_checkpoints(tmp_path / "run")[-1], ckpt.good_path(tmp_path / "run")):
        payload = torch.load(path, map_location="cpu", weights_only=True)
        assert payload["step"] == 2 and payload["kind"] == "peel-run"
        assert isinstance(payload["rng"]["torch"], torch.Tensor)
        assert "ema_fg" in payload["method"] and "opt_d" in payload["method"]


def test_stop_then_resume_continues_the_step_count(tiny_demo_folder, tmp_path):
    cfg = tiny_config(tiny_demo_folder, tmp_path / "run", steps=8)
    control = RunControl()
    first = []
    for ev in train(cfg, control):
        first.append(ev)
        if isinstance(ev, Losses) and ev.step == 4:
            control.stop()
    assert isinstance(first[-1], Finished) and first[-1].stopped and first[-1].step == 4
    assert any(isinstance(e, CheckpointSaved) and e.step == 4 for e in first)

    second = run_all(cfg, resume=True)
    assert isinstance(second[0], Started) and second[0].step == 4
    assert [e.step for e in second if isinstance(e, Losses)] == [6, 8]
    assert isinstance(second[-1], Finished) and not second[-1].stopped and second[-1].step == 8


def test_resume_matches_an_uninterrupted_run(tiny_demo_folder, tmp_path):
    """Model, optimiser, RNG and data-sampler states all come back: same losses either way."""
    straight = run_all(tiny_config(tiny_demo_folder, tmp_path / "a", steps=6))
    cfg = tiny_config(tiny_demo_folder, tmp_path / "b", steps=6)
    control = RunControl()
    for ev in train(cfg, control):
        if isinstance(ev, Losses) and ev.step == 2:
            control.stop()
    resumed = run_all(cfg, resume=True)
    a = [e.values["g_total"] for e in straight if isinstance(e, Losses) and e.step == 6]
    b = [e.values["g_total"] for e in resumed if isinstance(e, Losses) and e.step == 6]
    assert a == b


def test_resume_refuses_a_different_method_or_size(tiny_demo_folder, tmp_path):
    cfg = tiny_config(tiny_demo_folder, tmp_path / "run", steps=2)
    run_all(cfg)
    for change in ({"method": "perturbgan"}, {"size": 64}):
        events = run_all(tiny_config(tiny_demo_folder, tmp_path / "run", **change), resume=True)
        assert isinstance(events[-1], Failed)
        assert "cannot resume" in events[-1].error and next(iter(change)) in events[-1].error


def test_new_run_refuses_a_folder_that_holds_a_run(tiny_demo_folder, tmp_path):
    cfg = tiny_config(tiny_demo_folder, tmp_path / "run", steps=2)
    run_all(cfg)
    events = run_all(cfg)
    assert isinstance(events[-1], Failed) and "--resume" in events[-1].error


def test_corrupt_checkpoint_gives_a_clear_error(tiny_demo_folder, tmp_path):
    cfg = tiny_config(tiny_demo_folder, tmp_path / "run", steps=2)
    run_all(cfg)
    latest = ckpt.list_checkpoints(tmp_path / "run")[-1]
    latest.write_bytes(b"not a checkpoint at all")
    events = run_all(cfg, resume=True)
    assert isinstance(events[-1], Failed)
    assert "corrupt" in events[-1].error and latest.name in events[-1].error
    assert "Traceback" not in events[-1].error

    from engine.cli.commands.train import consume

    out, err = io.StringIO(), io.StringIO()
    assert consume(cfg, resume=True, out=out, err=err) == 1
    printed = err.getvalue().strip().splitlines()
    assert len(printed) == 1 and printed[0].startswith("peel train: error: ")
    assert "corrupt" in printed[0]


def test_pause_holds_the_step_count(tiny_demo_folder, tmp_path):
    cfg = tiny_config(tiny_demo_folder, tmp_path / "run", steps=400, log_every=1,
                      preview_every=1000, checkpoint_every=1000)
    control = RunControl()
    steps: list[int] = []
    finished: list[Finished] = []

    def consume() -> None:
        for ev in train(cfg, control):
            if isinstance(ev, Losses):
                steps.append(ev.step)
            elif isinstance(ev, (Finished, Failed)):
                finished.append(ev)

    worker = threading.Thread(target=consume)
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while len(steps) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        control.pause()
        time.sleep(0.5)  # let the step in flight finish
        held = len(steps)
        time.sleep(1.0)
        assert len(steps) == held, "steps advanced while paused"
        control.resume()
        deadline = time.monotonic() + 60
        while len(steps) <= held and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(steps) > held, "training did not resume"
    finally:
        control.stop()
        worker.join(60)
    assert isinstance(finished[-1], Finished) and finished[-1].stopped


def test_cli_progress_output(tiny_demo_folder, tmp_path):
    from engine.cli.commands.train import consume

    out = io.StringIO()
    assert consume(tiny_config(tiny_demo_folder, tmp_path / "run", steps=2), False, out) == 0
    text = out.getvalue()
    assert "training ilgan on cpu" in text and "steps/s" in text and "finished at step 2" in text


def test_cli_rejects_a_missing_folder_with_exit_code_2(tmp_path, capsys):
    from engine.cli.main import main

    assert main(["train", str(tmp_path / "nope"), "--out", str(tmp_path / "run"), "--steps", "1"]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
