"""The window driving the real engine trainer on a tiny demo folder (32 px, batch 4, no bootstrap).

Steps take ~0.3-3 s on 2 busy cores, so this test waits on events, never on fixed step counts.
"""

from __future__ import annotations

from pathlib import Path

from engine.config import PipelineConfig

TINY = {
    "log_every": 1,
    "preview_every": 2,
    "checkpoint_every": 10_000,
    "preview_count": 4,
    "pipeline": PipelineConfig(bootstrap=False, segmenter=False, rounds=0),
}


def test_real_run_previews_pause_resume_stop_resume(make_window, tiny_demo_folder, qtbot):
    w = make_window()  # the engine's own trainer
    w.config_overrides = TINY
    w.open_folder(str(tiny_demo_folder))
    w.training.size.setCurrentIndex(w.training.size.findData(32))
    w.training.batch.setValue(4)
    w.training.by_steps.setChecked(True)
    w.training.steps.setValue(10_000)
    w.training.bootstrap.setChecked(False)
    w.training.start_button.click()

    qtbot.waitUntil(lambda: len(w.preview.history) >= 2, timeout=60_000)
    qtbot.waitUntil(lambda: w.preview.redraws >= 1 and w.plots.redraws >= 1, timeout=5_000)
    assert w.device_label.text().startswith("device: cpu")
    assert w.preview.shown().mask.shape == (4, 32, 32)
    assert w.plots.losses and w.plots.coverage.n >= 2

    w.training.pause_button.click()
    qtbot.wait(2500)  # the step in progress finishes, then the trainer holds
    held = w.latest_step
    qtbot.wait(2000)
    assert w.latest_step == held

    w.training.pause_button.click()
    qtbot.waitUntil(lambda: w.latest_step > held, timeout=30_000)

    w.training.stop_button.click()
    qtbot.waitUntil(lambda: w.session is None, timeout=60_000)
    run = Path(w.run_dir)
    checkpoints = sorted((run / "checkpoints").glob("step-*.pt"))
    assert checkpoints, "stop must leave a checkpoint"
    stopped_at = w.latest_step
    assert checkpoints[-1].name == f"step-{stopped_at:07d}.pt"
    assert any("stopped" in t for t in w.log.texts("ok"))

    # The same window resumes the run where it stopped.
    assert w.training.start_button.text() == "Resume run"
    w.training.start_button.click()
    qtbot.waitUntil(lambda: w.latest_step > stopped_at, timeout=60_000)
    assert any(f"step {stopped_at})" in t for t in w.log.texts())  # Started at the saved step
    w.training.stop_button.click()
    qtbot.waitUntil(lambda: w.session is None, timeout=60_000)
    assert not w.log.texts("error")


def test_real_trainer_failure_reaches_user(make_window, tmp_path, qtbot, prompter):
    folder = tmp_path / "all broken"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"")
    (folder / "b.jpg").write_bytes(b"not a jpeg")
    w = make_window()
    w.config_overrides = TINY
    w.open_folder(str(folder))
    w.training.by_steps.setChecked(True)
    w.training.start_button.click()
    qtbot.waitUntil(lambda: w.session is None, timeout=60_000)
    assert prompter.errors and "no readable images" in prompter.errors[0][1]
    assert any("no readable images" in t for t in w.log.texts("error"))
