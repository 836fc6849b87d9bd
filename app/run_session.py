"""One training run driven from the GUI: the engine generator in a worker thread, plus its control.

The trainer itself is the engine's (``engine.train.runner.train``); this object only moves it to a
thread, forwards its events as a signal, and knows how to pause, stop and join it. RunControl is
thread-safe by design, so pause/resume/stop are plain calls from the GUI thread.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import torch
from PySide6.QtCore import QObject, Signal, Slot

from app.workers import EventWorker, WorkerThread
from engine.control import RunControl
from engine.events import Event

# Imported with the window, not when a run starts: importing the training modules (torchvision's
# C extensions among them) holds the GIL for ~1 s on a busy machine, which froze the window at
# the start of every run (bench/gui_latency.py).
from engine.train.runner import train

# The same for torch._dynamo (with sympy, triton and torch._inductor, ~900 modules): torch.optim
# imports it lazily when the first optimizer is built (torch/_compile.py, ``_disable_dynamo``),
# i.e. in the worker thread in the first second of every run. That import, and the full garbage
# collections its allocations trigger, held the GIL for 70-700 ms at a time (bench/RESULTS.md,
# "GUI latency at the start of a run"). Here it costs start-up time before the window shows.
import torch._dynamo  # noqa: E402, F401  isort: skip

Trainer = Callable[..., Iterator[Event]]


def gui_torch_threads() -> int:
    """Leave one core to the GUI thread on small machines, so the window never stutters."""
    cores = os.cpu_count() or 1
    return max(1, cores - 1)


def default_trainer() -> Trainer:
    return train


class TrainingSession(QObject):
    event = Signal(object)
    crashed = Signal(str, str)
    ended = Signal()

    def __init__(self, config: Any, trainer: Trainer | None = None, resume: bool = False,
                 torch_threads: int | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.config = config
        self.control = RunControl()
        self.torch_threads = torch_threads or gui_torch_threads()

        def events() -> Iterator[Event]:
            run = trainer or default_trainer()
            first = True
            for ev in run(config, self.control, resume=resume):
                if first:
                    # The engine sizes torch's pool to every core when it starts; a window
                    # needs one core of its own, so the pool is resized once setup is done.
                    torch.set_num_threads(self.torch_threads)
                    first = False
                yield ev

        self._worker = EventWorker(events)
        # Re-emit through this GUI-thread object: the window connects to one stable sender.
        self._worker.event.connect(self._forward_event)
        self._worker.crashed.connect(self._forward_crash)
        self._worker.done.connect(self._forward_done)
        self._thread = WorkerThread(self._worker, "peel-train")

    def start(self) -> None:
        self._thread.start()

    def is_running(self) -> bool:
        return self._thread.is_running()

    def pause(self) -> None:
        self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    def stop(self) -> None:
        self.control.stop()

    def join(self, timeout_ms: int = -1) -> bool:
        return self._thread.join(timeout_ms)

    @Slot(object)
    def _forward_event(self, ev: object) -> None:
        self.event.emit(ev)

    @Slot(str, str)
    def _forward_crash(self, message: str, details: str) -> None:
        self.crashed.emit(message, details)

    @Slot()
    def _forward_done(self) -> None:
        self.ended.emit()
