"""Cooperative run control: pause, resume and stop requested from any thread.

The trainer polls this object at step boundaries only, so a request never interrupts a half-done
optimiser step and the checkpoint written on stop is always consistent.
"""

from __future__ import annotations

import threading
import time


class RunControl:
    def __init__(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._held = 0.0  # seconds spent blocked in wait_if_paused: a run's clock leaves them out

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()  # wake a paused trainer so it can exit

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def wait_if_paused(self, poll_s: float = 0.1) -> bool:
        """Block while paused; return True when the caller should stop."""
        t0 = time.perf_counter()
        while not self._running.wait(poll_s):
            if self._stop.is_set():
                break
        self._held += time.perf_counter() - t0
        return self._stop.is_set()

    @property
    def held_s(self) -> float:
        """Seconds the trainer has been held by a pause (the run's budget never counts them)."""
        return self._held
