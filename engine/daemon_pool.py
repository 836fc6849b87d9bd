"""A thread pool whose threads nobody waits for: cancelling must not wait on a stuck reader.

``ThreadPoolExecutor`` joins its threads on ``shutdown(wait=True)`` and again when the
interpreter exits, so one thread stuck in the kernel (a read from a hung network mount, a FIFO
opened by some other path) kept ``peel segment`` alive after Ctrl-C, forever. Here the threads
are daemons: ``shutdown(wait=False)`` returns at once, queued work is dropped, and a stuck thread
dies with the process. Only for work whose result may be abandoned (reading and decoding photos,
writing atomic outputs: an abandoned write leaves a hidden temp file that the next run removes).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class DaemonPool:
    """``submit`` and ``shutdown`` like ``ThreadPoolExecutor``, on daemon threads."""

    def __init__(self, workers: int, name: str) -> None:
        self._queue: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple] | None] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._busy = 0
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(max(1, workers))
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        fut: Future[T] = Future()
        self._queue.put((fut, fn, args))
        return fut

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            fut, fn, args = item
            if not fut.set_running_or_notify_cancel():
                continue  # cancelled while queued
            with self._lock:
                self._busy += 1
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:  # handed to whoever reads the future, as executors do
                fut.set_exception(exc)
            finally:
                with self._lock:
                    self._busy -= 1

    @property
    def busy(self) -> int:
        """Threads running a task now (after ``shutdown(wait=False)``: the abandoned ones)."""
        with self._lock:
            return self._busy

    def shutdown(self, wait: bool = True) -> None:
        """Stop the threads after the work already queued (cancel futures first to drop it);
        ``wait=False`` returns at once, even if a thread is stuck."""
        for _ in self._threads:
            self._queue.put(None)
        if wait:
            for thread in self._threads:
                thread.join()
