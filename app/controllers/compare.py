"""The method comparison of the open folder as one background job (``engine.compare``): start,
cancel, progress per method and the outcome; the Compare panel shows what it says."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from app import engine_calls
from app.workers import Job, JobRunner


class CompareController(QObject):
    started = Signal(object)  # the engine's CompareConfig
    progress = Signal(int, int)
    note = Signal(str, str)  # text, level
    preview = Signal(object)  # an engine Preview of the method in training
    outcome = Signal(object)  # engine_calls.CompareOutcome
    failed = Signal(str, str, str)  # title, message, details
    runningChanged = Signal(bool)
    message = Signal(str, str)  # text, level

    def __init__(self, jobs: JobRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.jobs = jobs
        self.job: Job | None = None

    def is_running(self) -> bool:
        return self.job is not None

    def start(self, config: Any, torch_threads: int) -> bool:
        if self.job is not None:
            return False
        self.job = self.jobs.start(engine_calls.compare_job(config, torch_threads),
                                   "peel-compare", on_result=self._on_result,
                                   on_error=self._on_error, on_progress=self.progress,
                                   on_done=self._on_done, on_note=self._on_note,
                                   on_preview=self.preview)
        self.started.emit(config)
        self.message.emit(f"Comparison started → {config.out}", "info")
        self.runningChanged.emit(True)
        return True

    @Slot()
    def cancel(self) -> None:
        if self.job is not None:
            self.job.stop()
            self.message.emit("Comparison: cancelling…", "warning")

    @Slot(str, str)
    def _on_note(self, text: str, level: str) -> None:
        self.note.emit(text, level)
        self.message.emit(f"Comparison: {text}", level)  # stages, warnings: a few per method

    @Slot(object)
    def _on_result(self, result: engine_calls.CompareOutcome) -> None:
        self.outcome.emit(result)
        if result.report is None:
            self.message.emit("Comparison cancelled", "warning")
        else:
            self.message.emit(f"Comparison done: {result.out_dir}/report.md", "ok")

    @Slot(str, str)
    def _on_error(self, message: str, details: str) -> None:
        self.failed.emit("Comparison failed", message, details)

    @Slot()
    def _on_done(self) -> None:
        self.job = None
        self.runningChanged.emit(False)
