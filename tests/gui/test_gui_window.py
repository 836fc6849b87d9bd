"""The window's threading and controls, driven by the scripted trainer (fast, deterministic)."""

from __future__ import annotations

from conftest import scripted_trainer


def _wait_step(qtbot, w, at_least: int, timeout: int = 5000) -> None:
    qtbot.waitUntil(lambda: "d" in w.plots.losses and w.plots.losses["d"].n * 5 >= at_least,
                    timeout=timeout)


def test_folder_shows_count_and_flags_unreadable(make_window, tiny_demo_folder, qtbot):
    (tiny_demo_folder / "broken.png").write_bytes(b"")
    w = make_window()
    assert not w.training.start_button.isEnabled()
    assert w.open_folder(str(tiny_demo_folder))
    assert w.folder_panel.model.rowCount() == 13
    qtbot.waitUntil(lambda: "checking" not in w.folder_panel.count_label.text(), timeout=5000)
    assert "12 images" in w.folder_panel.count_label.text()  # 13 files, 1 unreadable
    assert "1 unreadable" in w.folder_panel.count_label.text()
    bad = w.folder_panel.model.bad_files()
    assert list(bad.values()) == ["empty file (0 bytes)"]
    assert w.training.start_button.isEnabled()
    assert str(tiny_demo_folder.resolve()) in w.settings.value("recent_folders")


def test_pause_holds_resume_continues_stop_checkpoints(make_window, tiny_demo_folder, qtbot):
    w = make_window(trainer=scripted_trainer(step_s=0.003))
    w.open_folder(str(tiny_demo_folder))
    w.training.start_button.click()
    assert w.session is not None
    _wait_step(qtbot, w, 40)
    qtbot.waitUntil(lambda: w.preview.redraws > 0 and w.plots.redraws > 0, timeout=3000)
    assert w.device_label.text().startswith("device: cpu (")
    assert any("unreadable" in t for t in w.log.texts("warning"))

    w.training.pause_button.click()
    assert w.session.control.paused
    qtbot.wait(300)  # let events already in flight arrive
    held = w.plots.losses["d"].n
    qtbot.wait(400)
    assert w.plots.losses["d"].n == held

    w.training.pause_button.click()
    qtbot.waitUntil(lambda: w.plots.losses["d"].n > held + 3, timeout=3000)

    w.training.stop_button.click()
    qtbot.waitUntil(lambda: w.session is None, timeout=5000)
    assert list((w.run_dir and __import__("pathlib").Path(w.run_dir) / "checkpoints").glob("*.pt"))
    assert w.training.start_button.isEnabled()
    assert w.training.start_button.text() == "Resume run"


def test_redraws_are_timer_driven_not_per_event(make_window, tiny_demo_folder, qtbot):
    w = make_window(trainer=scripted_trainer(step_s=0.0))
    w.open_folder(str(tiny_demo_folder))
    w.training.start_button.click()
    qtbot.waitUntil(lambda: len(w.preview.history) >= 60, timeout=10000)
    w.stop_training()
    qtbot.waitUntil(lambda: w.session is None, timeout=5000)
    previews = w.preview.history[-1].step // 20
    # thousands of events, a redraw per timer tick at most
    assert w.preview.redraws < previews
    assert w.plots.redraws < w.plots.losses["d"].n


def test_history_slider_shows_earlier_preview(make_window, tiny_demo_folder, qtbot):
    w = make_window(trainer=scripted_trainer(step_s=0.002))
    w.open_folder(str(tiny_demo_folder))
    w.training.start_button.click()
    qtbot.waitUntil(lambda: len(w.preview.history) >= 3, timeout=5000)
    w.preview.slider.setValue(0)
    assert not w.preview.follow.isChecked()
    first = w.preview.shown().step
    qtbot.waitUntil(lambda: len(w.preview.history) >= 5, timeout=5000)
    assert w.preview.shown().step == first  # looking back is not disturbed by new previews
    w.preview.follow.setChecked(True)
    assert w.preview.shown().step == w.preview.history[-1].step > first


def test_worker_exception_reaches_user(make_window, tiny_demo_folder, qtbot, prompter):
    w = make_window(trainer=scripted_trainer(fail_at=10))
    w.open_folder(str(tiny_demo_folder))
    w.training.start_button.click()
    qtbot.waitUntil(lambda: w.session is None, timeout=5000)
    assert prompter.errors and "disk full" in prompter.errors[0][1]
    assert any("disk full" in t for t in w.log.texts("error"))
    assert w.training.start_button.isEnabled()


def test_real_message_box_is_non_blocking(qtbot, settings, tmp_path, tiny_demo_folder):
    from PySide6.QtWidgets import QMessageBox

    from app.window import MainWindow

    w = MainWindow(settings=settings, runs_dir=tmp_path / "runs",
                   trainer=scripted_trainer(fail_at=3))
    qtbot.addWidget(w)
    w.open_folder(str(tiny_demo_folder))
    w.training.start_button.click()
    qtbot.waitUntil(lambda: w.session is None, timeout=5000)
    boxes = [b for b in w.findChildren(QMessageBox) if b.isVisible()]
    assert boxes and "disk full" in boxes[0].text()
    boxes[0].accept()
    w.close()


def test_close_while_training_asks_then_joins(make_window, tiny_demo_folder, qtbot, prompter):
    w = make_window(trainer=scripted_trainer(step_s=0.003))
    w.open_folder(str(tiny_demo_folder))
    w.training.start_button.click()
    _wait_step(qtbot, w, 10)
    prompter.answer = False
    assert not w.close()  # user said no: still open, still training
    assert w.session is not None and w.session.is_running()
    prompter.answer = True
    session = w.session
    assert w.close()
    assert prompter.questions == ["Training is running"] * 2
    assert not session.is_running()
    assert list((tmp_path_of(w) / "checkpoints").glob("*.pt"))


def tmp_path_of(w):
    from pathlib import Path

    return Path(w.run_dir)


def test_settings_persist(make_window, settings):
    w = make_window()
    w.training.size.setCurrentIndex(0)
    w.training.by_steps.setChecked(True)
    w.training.steps.setValue(123)
    w.close()
    w2 = make_window()
    assert w2.training.size.currentData() == 32
    assert w2.training.by_steps.isChecked() and w2.training.steps.value() == 123
    assert w2.training.options()["steps"] == 123


def test_cuda_requested_without_cuda_is_flagged(make_window, tiny_demo_folder, qtbot):
    import torch

    if torch.cuda.is_available():
        return  # nothing to warn about on a CUDA machine
    w = make_window(trainer=scripted_trainer(step_s=0.003))
    w.open_folder(str(tiny_demo_folder))
    w.training.device.setCurrentText("cuda")
    w.training.start_button.click()
    assert "CUDA" in w.statusBar().currentMessage()
    qtbot.waitUntil(lambda: "CUDA not available" in w.device_label.text(), timeout=5000)
    w.stop_training()
    qtbot.waitUntil(lambda: w.session is None, timeout=5000)


def test_a_run_killed_before_its_first_checkpoint_is_not_offered_for_resume(
        make_window, tiny_demo_folder, qtbot):
    """"Resumable" was any file in checkpoints/: a half-written temp of a run that failed
    before its first step checkpoint made Start say "Resume run" with nothing to resume."""
    from pathlib import Path

    def dies_writing_its_first_checkpoint(config, control=None, resume=False):
        folder = Path(config.out) / "checkpoints"
        folder.mkdir(parents=True)
        (folder / "step-0000005.pt.tmp-1234").write_bytes(b"half")  # what a kill leaves
        yield from ()
        raise RuntimeError("killed while writing the first checkpoint")

    w = make_window(trainer=dies_writing_its_first_checkpoint)
    w.open_folder(str(tiny_demo_folder))
    w.training.start_button.click()
    qtbot.waitUntil(lambda: w.session is None, timeout=5000)
    assert w.resume_dir is None and w.training.start_button.text() == "Start"


def test_a_job_cancelled_while_queued_never_runs(qtbot):
    """Closing the window cancels every job and joins those that started; a job still queued for
    a pool thread used to start after that join had passed it by, and outlive the window (seen as
    a flaky 'jobs still running' after close)."""
    import threading

    from PySide6.QtCore import QThreadPool

    from app.workers import MIN_POOL_THREADS, JobRunner

    runner = JobRunner()
    ran: list[str] = []

    def blocker(progress, cancel: threading.Event) -> None:
        cancel.wait(10)

    def queued(progress, cancel: threading.Event) -> None:
        ran.append("queued job ran")

    pool = QThreadPool.globalInstance()
    busy = [runner.start(blocker, f"blocker-{i}") for i in range(max(MIN_POOL_THREADS,
                                                                     pool.maxThreadCount()))]
    last = runner.start(queued, "queued")
    qtbot.waitUntil(lambda: all(job.started.is_set() for job in busy), timeout=10_000)
    assert not last.started.is_set()  # every pool thread is taken: it waits in the queue
    assert runner.shutdown(timeout_ms=10_000)
    assert pool.waitForDone(10_000)
    assert ran == [] and runner.running() == 0


def test_nothing_starts_after_the_jobs_were_shut_down(qtbot):
    """A viewer request that arrives while the window closes (a queued 'prediction done' asking
    for the next photo) must not start a job that outlives the window."""
    import threading

    from PySide6.QtCore import QThreadPool

    from app.workers import JobRunner

    runner = JobRunner()
    ran: list[str] = []
    assert runner.shutdown()
    job = runner.start(lambda progress, cancel: ran.append("ran"), "late")
    assert QThreadPool.globalInstance().waitForDone(5_000)
    assert ran == [] and not job.running() and runner.running() == 0
    assert isinstance(job.cancel, threading.Event) and job.cancel.is_set()


def test_a_training_worker_hands_the_gil_back_to_the_gui_quickly(make_window, tiny_demo_folder,
                                                                  qtbot):
    """At CPython's 5 ms switch interval every Qt-to-Python call of a redraw waited up to 5 ms
    for a training thread running Python code (a 4.5 ms plot update took 24.5 ms)."""
    import sys

    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)  # CPython's default, whatever an earlier test left
    try:
        w = make_window(trainer=scripted_trainer(step_s=0.01))
        w.open_folder(str(tiny_demo_folder))
        w.training.start_button.click()
        qtbot.waitUntil(lambda: w.latest_step >= 5, timeout=10_000)
        assert sys.getswitchinterval() <= 0.001
        w.stop_training()
        qtbot.waitUntil(lambda: w.session is None, timeout=10_000)
    finally:
        sys.setswitchinterval(before)
