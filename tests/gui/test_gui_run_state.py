"""Issue #17, app items 2, 3, 4 and 8: the window always shows the run, folder and photo the user
chose, and exports go where the user will find them."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
from conftest import fake_preview, scripted_trainer
from PySide6.QtCore import Qt


@pytest.fixture
def cli_run(tmp_path, tiny_demo_folder):
    """A run folder as ``peel train`` leaves it: config, segmenter, previews, metrics.jsonl."""
    import torch

    from engine.config import RunConfig
    from engine.nets.unet import UNet, UNetConfig
    from engine.segmenter.model import save_segmenter

    run = tmp_path / "cli-run"
    (run / "previews").mkdir(parents=True)
    cfg = RunConfig(folder=str(tiny_demo_folder), out=str(run), size=32, batch=4, steps=40)
    (run / "config.json").write_text(json.dumps(cfg.to_dict()))
    torch.manual_seed(0)
    save_segmenter(run / "segmenter.pt", UNet(UNetConfig(width=4, depth=2)), 32, "perturbgan",
                   str(tiny_demo_folder))
    for step in (20, 40):
        grid = np.full((4 * 32 + 6, 4 * 32 + 6, 3), step, np.uint8)
        cv2.imwrite(str(run / "previews" / f"step-{step:07d}.png"), grid)
    lines = [{"step": s, "phase": "gan", "time": s / 10, "d": 1.0 / s, "g": 0.5, "coverage": 0.3,
              "mask_mean": 0.3} for s in (10, 20, 30, 40)]
    lines.insert(1, {"step": 10, "event": "size_floor", "value": 0.1})
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"cut')
    return run


def test_an_opened_cli_run_shows_its_own_previews_and_curves(make_window, cli_run, qtbot):
    w = make_window()
    w.plots.add_losses(999, {"stale": 1.0}, "gan")  # what a previous run left on the Live tab
    w.preview.add(fake_preview(999))
    assert w.open_run(str(cli_run))
    assert [p.step for p in w.preview.history] == [20, 40]
    qtbot.waitUntil(lambda: w.preview.caption.text().startswith("step 40"), timeout=3000)
    assert w.preview.image._pixmap is not None
    assert "stale" not in w.plots.losses
    x, y = w.plots.losses["d"].view()
    assert list(y) == pytest.approx([0.1, 0.05, 1 / 30, 0.025])
    assert w.plots.coverage.n == 4
    assert "step 40" in w.training.progress.format()


def test_another_folder_puts_the_previous_run_away(make_window, tiny_demo_folder, tmp_path,
                                                   qtbot):
    w = make_window(trainer=scripted_trainer(step_s=0.003))
    w.open_folder(str(tiny_demo_folder))
    w.training.start_button.click()
    qtbot.waitUntil(lambda: len(w.preview.history) >= 2, timeout=5000)
    w.stop_training()
    qtbot.waitUntil(lambda: w.session is None, timeout=5000)
    assert "stopped" in w.training.progress.format()
    w.compare.show_report(str(tmp_path), {"rows": [{"method": "ilgan", "scores": {},
                                                    "status": "trained", "note": ""}],
                                          "budget": {"steps_per_method": 5}, "size": 32})
    other = tmp_path / "other photos"
    shutil.copytree(tiny_demo_folder, other)

    assert w.open_folder(str(other))
    assert w.run_dir is None and w.resume_dir is None
    assert w.training.start_button.text() == "Start"
    assert w.training.progress.format() == "idle"
    assert w.run_label.text() == "" and w.device_label.text() == "device: –"
    assert not w.preview.history and not w.plots.losses
    assert w.results.run_dir is None
    assert w.compare.method_rows() == []
    assert w.windowTitle() == "other photos · Peel"


def test_a_thumbnail_click_shows_that_photo_and_the_shown_photo_is_highlighted(
        make_window, cli_run, qtbot):
    w = make_window()
    w.open_run(str(cli_run))
    res, view = w.results, w.folder_panel.view
    qtbot.waitUntil(lambda: res.current is not None, timeout=10000)
    assert view.currentIndex().row() == res.index == 0

    index = w.folder_panel.model.index(3)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton,
                     pos=view.visualRect(index).center())
    qtbot.waitUntil(lambda: res.current is not None and res.current.path == res.photos[3],
                    timeout=10000)
    assert w.tabs.currentWidget() is res
    res.next_button.click()
    qtbot.waitUntil(lambda: res.current.path == res.photos[4], timeout=10000)
    assert view.currentIndex().row() == 4


def test_masks_default_next_to_the_photos_and_a_failed_open_is_said(make_window, cli_run,
                                                                     tiny_demo_folder,
                                                                     prompter, qtbot):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    w = make_window()
    w.open_run(str(cli_run))

    def close_modal() -> None:  # a dialog run with exec() would block the test otherwise
        modal = QApplication.activeModalWidget()
        if modal is not None:
            modal.reject()

    QTimer.singleShot(300, close_modal)
    w.export_masks_dialog()
    dialog = w.export_dialog_box
    assert dialog.out.text() == f"{tiny_demo_folder}-masks"
    assert "/." not in dialog.out.text()  # nothing hidden
    dialog.reject()

    prompter.can_open = False
    w.open_output_folder(f"{tiny_demo_folder}-masks")
    assert any("Could not open" in t and "-masks" in t for t in w.log.texts("warning"))
    assert "Could not open" in w.statusBar().currentMessage()


def test_paused_shows_no_stale_rate_and_a_photo_stage_counts_photos(make_window,
                                                                    tiny_demo_folder, qtbot):
    from engine.events import Progress

    w = make_window(trainer=scripted_trainer(step_s=0.003))
    w.open_folder(str(tiny_demo_folder))
    w.training.start_button.click()
    qtbot.waitUntil(lambda: "steps/s" in w.training.rate_label.text(), timeout=5000)
    w.training.pause_button.click()
    assert w.training.progress.format().endswith("· paused")
    qtbot.wait(300)  # progress already in flight must not bring the rate back
    assert "steps/s" not in w.training.rate_label.text()
    assert w.training.progress.format().endswith("· paused")
    w.training.pause_button.click()
    qtbot.waitUntil(lambda: "steps/s" in w.training.rate_label.text(), timeout=5000)
    w.stop_training()
    qtbot.waitUntil(lambda: w.session is None, timeout=5000)

    w.training.on_event(Progress(step=0, phase="bootstrap", steps_per_s=18.1, elapsed_s=1.0,
                                 eta_s=4.0, fraction=0.25, unit="photos", done=10, total=40))
    w.training._apply_progress()
    assert w.training.progress.format() == "bootstrap · 10/40 photos"
    assert w.training.rate_label.text() == "18.10 photos/s · stage ETA 0:04"


def test_an_opened_run_shows_the_prior_and_segmenter_curves(make_window, tiny_demo_folder,
                                                               tmp_path):
    """Issue #17: an opened run plots every stage's losses, not only the GAN's."""
    from engine.config import NetConfig, PipelineConfig, RunConfig
    from engine.train.runner import train

    run = tmp_path / "full-run"
    cfg = RunConfig(folder=str(tiny_demo_folder), out=str(run), size=32, batch=4, steps=4,
                    device="cpu", threads=1, log_every=2, preview_every=4, checkpoint_every=2,
                    preview_count=3, net=NetConfig(g_width=8, d_width=8, z_dim=16),
                    pipeline=PipelineConfig(segmenter_steps=4, segmenter_batch=4, rounds=0,
                                            refine_labels=False))
    list(train(cfg))
    w = make_window()
    assert w.open_run(str(run))
    while w.plots._dirty:  # the timer's ticks: a tab, then a curve per tick
        w.plots._redraw()
    tabs = w.plots.loss_tabs
    shown = [tabs.tabText(i) for i in range(tabs.count()) if tabs.isTabVisible(i)]
    assert shown == ["GrabCut prior losses", "GAN losses", "segmenter losses"]
    assert any(key.startswith("segmenter:") for key in w.plots.losses)
