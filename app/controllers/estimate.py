"""The budget estimate shown before *Start*: "about N minutes here" for a segmenter better than
GrabCut on the chosen folder, from the last rates a run measured on this machine.

Computed in a worker (it reads the user's data directory and may initialise torch's device
query), answered by signal; only the newest request's answer is shown.
"""

from __future__ import annotations

import threading
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from app.workers import JobRunner
from engine.train.rates import estimate_text


class EstimateController(QObject):
    """``request(photos, size, device, minutes)``; emits ``estimated(text)`` for the newest."""

    estimated = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._runner = JobRunner(self)
        self._ticket = 0

    def request(self, photos: int, size: int, device: str, minutes: float) -> None:
        self._ticket += 1
        ticket = self._ticket

        def job(progress: Any, cancel: threading.Event) -> tuple[int, str]:
            return ticket, estimate_text(photos, size, device, minutes)

        self._runner.start(job, "budget-estimate", on_result=self._on_result)

    def shutdown(self, timeout_ms: int = 5_000) -> bool:
        self._ticket += 1
        return self._runner.shutdown(timeout_ms)

    @Slot(object)
    def _on_result(self, answer: tuple[int, str]) -> None:
        ticket, text = answer
        if ticket == self._ticket:
            self.estimated.emit(text)
