"""The run's exports (ONNX model, masks of a photo folder) as background jobs: one at a time,
with progress, cancel, and the result said in the log."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from app.engine_calls import describe_result
from app.workers import Job, JobRunner


class ExportController(QObject):
    """Runs one export job; the results panel shows ``started`` / ``progress`` / ``ended``."""

    started = Signal(str)  # label
    progress = Signal(int, int)
    ended = Signal()
    message = Signal(str, str)  # text, level
    failed = Signal(str, str, str)  # title, message, details
    openFolderRequested = Signal(str)

    def __init__(self, jobs: JobRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.jobs = jobs
        self.job: Job | None = None
        self.label = ""
        self.last: object = None  # the last export's summary

    def is_running(self) -> bool:
        return self.job is not None

    def start(self, fn: Callable[[Any, Any], Any], label: str) -> bool:
        """Run ``fn(progress, cancel) -> summary`` unless another export is running."""
        if self.job is not None:
            return False
        self.label = label
        self.job = self.jobs.start(fn, "peel-export", on_result=self._on_result,
                                   on_error=self._on_error, on_progress=self.progress,
                                   on_done=self._on_done)
        self.started.emit(label)
        self.message.emit(f"{label} started", "info")
        return True

    @Slot()
    def cancel(self) -> None:
        if self.job is not None:
            self.job.stop()
            self.message.emit(f"{self.label}: cancelling…", "warning")

    @Slot(object)
    def _on_result(self, summary: object) -> None:
        self.last = summary
        text, level, folder = describe_result(summary)
        self.message.emit(f"{self.label}: {text}", level)
        for bad in getattr(summary, "failures", [])[:10]:
            self.message.emit(f"{bad.path}: {bad.reason}", "warning")
        if folder is not None:
            self.openFolderRequested.emit(folder)

    @Slot(str, str)
    def _on_error(self, message: str, details: str) -> None:
        self.failed.emit(f"{self.label} failed", message, details)

    @Slot()
    def _on_done(self) -> None:
        self.job = None
        self.ended.emit()
