"""One training run driven from the GUI: the engine generator in a worker thread, plus its control.

The trainer itself is the engine's (``engine.train.runner.train``); this object only moves it to a
thread, forwards its events as a signal, and knows how to pause, stop and join it. RunControl is
thread-safe by design, so pause/resume/stop are plain calls from the GUI thread.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import torch
from PySide6.QtCore import QObject, Signal, Slot

from app.workers import EventStream
from engine.control import RunControl
from engine.events import Event, Failed, Started

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

log = logging.getLogger(__name__)

Trainer = Callable[..., Iterator[Event]]


def gui_torch_threads() -> int:
    """Leave one core to the GUI thread on small machines, so the window never stutters."""
    cores = os.cpu_count() or 1
    return max(1, cores - 1)


def default_trainer() -> Trainer:
    return train


def cpu_description(threads: int) -> str:
    """The CPU as this session trains on it (the engine saw every core before the pool was
    resized, so its own description would count threads training does not use)."""
    kept = ", 1 core kept for the window" if threads < (os.cpu_count() or 1) else ""
    return f"cpu ({threads} training thread{'s' if threads > 1 else ''}{kept})"


class TrainingSession(QObject):
    """One run of the trainer on a worker; ``event`` carries every engine event, then ``ended``.

    A trainer that raises ends with the engine's own ``Failed`` event, so the window has one
    failure path whatever broke.
    """

    event = Signal(object)
    ended = Signal()

    def __init__(self, config: Any, trainer: Trainer | None = None, resume: bool = False,
                 torch_threads: int | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.config = config
        self.control = RunControl()
        self.torch_threads = torch_threads or gui_torch_threads()

        def events() -> Iterator[Event]:
            run = trainer or default_trainer()
            first, step = True, 0
            try:
                for ev in run(config, self.control, resume=resume):
                    if first:
                        # The engine sizes torch's pool to every core when it starts; a window
                        # needs one core of its own, so the pool is resized once setup is done.
                        torch.set_num_threads(self.torch_threads)
                        first = False
                    if isinstance(ev, Started) and ev.device.startswith("cpu"):
                        ev = replace(ev, device=cpu_description(self.torch_threads))
                    step = ev.step
                    yield ev
            except Exception as exc:  # every failure must reach the user, not die in a thread
                log.exception("training failed")
                yield Failed(step=step, error=f"{type(exc).__name__}: {exc}",
                             traceback=traceback.format_exc())

        self._stream = EventStream(events, "peel-train", self._forward_event, self._forward_done)

    def start(self) -> None:
        self._stream.start()

    def is_running(self) -> bool:
        return self._stream.is_running()

    def pause(self) -> None:
        self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    def stop(self) -> None:
        self.control.stop()

    def join(self, timeout_ms: int = -1) -> bool:
        return self._stream.join(timeout_ms)

    @Slot(object)
    def _forward_event(self, ev: object) -> None:
        self.event.emit(ev)

    @Slot()
    def _forward_done(self) -> None:
        self.ended.emit()
