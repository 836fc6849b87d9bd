"""The training run the window shows: starting, pausing, stopping and resuming it, and which run
folder is current (trained now or opened), so the panels never keep a run that is gone."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from app import engine_calls
from app.run_session import Trainer, TrainingSession
from engine.events import Failed, Finished
from engine.runs.folder import RunFolder


class TrainingController(QObject):
    """Owns the TrainingSession. ``event`` re-emits every engine event of the current run (the
    panels subscribe to it with their ``on_event``); ``runChanged(run_dir or "")`` says which run
    the panels should show; ``runningChanged`` follows the session."""

    event = Signal(object)
    runChanged = Signal(str)
    runningChanged = Signal(bool)
    message = Signal(str, str)  # text, level
    failed = Signal(str, str, str)  # title, message, details

    def __init__(self, runs_dir: Path, trainer: Trainer | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runs_dir = runs_dir
        self.trainer = trainer  # None: the engine's own trainer (tests inject others)
        self.session: TrainingSession | None = None
        self.run_dir: str | None = None  # the run shown: training now, or opened
        self.resume_dir: str | None = None  # Start resumes this run
        self.run_complete = False
        self.latest_step = 0
        self.paused = False
        self.config_overrides: dict[str, Any] = {}  # RunConfig fields the panel does not show

    def is_running(self) -> bool:
        return self.session is not None

    # -- which run -----------------------------------------------------------------------------
    def show_run(self, run_dir: str, step: int = 0) -> None:
        """An opened run folder becomes the current run; Start resumes it."""
        self.run_dir = self.resume_dir = run_dir
        self.run_complete = False
        self.latest_step = step
        self.runChanged.emit(run_dir)

    def forget(self) -> None:
        """No current run (another photo folder was chosen)."""
        self.run_dir = self.resume_dir = None
        self.run_complete = False
        self.latest_step = 0
        self.runChanged.emit("")

    def forget_resume(self) -> None:
        self.resume_dir = None

    # -- the run -------------------------------------------------------------------------------
    def start(self, folder: str, options: dict[str, Any]) -> bool:
        if self.session is not None:
            return False
        resume = bool(self.resume_dir)
        if self.resume_dir:
            run_dir = self.resume_dir
        else:
            name = f"{Path(folder).name}-{time.strftime('%Y%m%d-%H%M%S')}"
            run_dir = str(self.runs_dir / name)
        try:
            config = engine_calls.make_config(folder, run_dir, options, **self.config_overrides)
        except ValueError as exc:
            self.failed.emit("Invalid settings", str(exc), "")
            return False
        self.run_dir = run_dir
        self.run_complete = False
        self.paused = False
        self.runChanged.emit(run_dir)
        self.session = TrainingSession(config, trainer=self.trainer, resume=resume)
        self.session.event.connect(self._on_event)
        self.session.ended.connect(self._on_ended)
        self.session.start()
        self.message.emit(f"{'Resuming' if resume else 'Starting'} run in {run_dir}", "info")
        self.runningChanged.emit(True)
        return True

    def set_paused(self, paused: bool) -> None:
        if self.session is None:
            return
        self.paused = paused
        if paused:
            self.session.pause()
            self.message.emit("Paused (at the next step boundary)", "info")
        else:
            self.session.resume()
            self.message.emit("Resumed", "info")

    def stop(self) -> None:
        if self.session is not None:
            self.session.stop()
            self.message.emit("Stopping at the next step; a checkpoint will be saved", "info")

    def shutdown(self) -> None:
        """Stop the run and wait for it (the window is closing)."""
        session, self.session = self.session, None
        if session is not None:
            session.stop()
            session.join()

    @Slot(object)
    def _on_event(self, ev: object) -> None:
        if self.session is None:
            return  # the window closed the run; late events are not shown
        self.latest_step = getattr(ev, "step", self.latest_step)
        if isinstance(ev, Finished):
            self.run_complete = not ev.stopped
        self.event.emit(ev)
        if isinstance(ev, Failed):
            self.failed.emit("Training failed", ev.error, ev.traceback)

    @Slot()
    def _on_ended(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            session.join()
        resumable = (not self.run_complete and self.run_dir is not None
                     and RunFolder(self.run_dir).resumable())  # a step checkpoint, not any file
        self.resume_dir = self.run_dir if resumable else None
        self.paused = False
        self.runningChanged.emit(False)
