"""Background work for the GUI: the only module that touches QThread and QThreadPool.

Everything here follows one rule: the GUI thread and a worker talk only through signals delivered
to slots (queued across threads), never through shared widgets. Engine code runs unchanged inside
the workers; it knows nothing about Qt.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import cv2
import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThread, QThreadPool, Signal, Slot
from PySide6.QtGui import QImage

from engine.imageio import ImageReadError, read_rgb

log = logging.getLogger(__name__)


class EventWorker(QObject):
    """Drains an engine event generator in a worker thread and re-emits each event as a signal.

    ``factory`` is called inside the worker thread, so the generator (and any torch state it
    creates) lives there. A Python exception becomes ``crashed(message, traceback)``.
    """

    event = Signal(object)
    crashed = Signal(str, str)
    done = Signal()

    def __init__(self, factory: Callable[[], Iterator[Any]]) -> None:
        super().__init__()
        self._factory = factory

    @Slot()
    def run(self) -> None:
        try:
            for item in self._factory():
                self.event.emit(item)
        except Exception as exc:  # every failure must reach the user, not die in a thread
            log.exception("worker failed")
            self.crashed.emit(f"{type(exc).__name__}: {exc}", traceback.format_exc())
        finally:
            self.done.emit()


class JobProgress:
    """What a job gets as ``progress``: ``progress(done, total)``, and ``progress.note(text,
    level)`` for a status line (e.g. the stage a long job is in); both become signals."""

    def __init__(self, worker: CallWorker) -> None:
        self._worker = worker

    def __call__(self, done: int, total: int) -> None:
        self._worker.progress.emit(int(done), int(total))

    def note(self, text: str, level: str = "info") -> None:
        self._worker.note.emit(str(text), str(level))


class CallWorker(QObject):
    """Runs ``fn(progress, cancel)`` once in a worker thread; for exports, inference, comparisons.

    ``progress(done, total)`` (a JobProgress) may be called from the worker at any rate; it
    becomes a signal. ``cancel`` is a ``threading.Event`` that the engine function polls.
    """

    progress = Signal(int, int)
    note = Signal(str, str)  # text, level
    result = Signal(object)
    crashed = Signal(str, str)
    done = Signal()

    def __init__(self, fn: Callable[[Callable[[int, int], None], threading.Event], Any]) -> None:
        super().__init__()
        self._fn = fn
        self.cancel = threading.Event()

    @Slot()
    def run(self) -> None:
        try:
            value = self._fn(JobProgress(self), self.cancel)
            self.result.emit(value)
        except Exception as exc:
            log.exception("background job failed")
            self.crashed.emit(f"{type(exc).__name__}: {exc}", traceback.format_exc())
        finally:
            self.done.emit()


class WorkerThread:
    """One worker object moved to its own QThread, started once, joined with ``join``."""

    def __init__(self, worker: EventWorker | CallWorker, name: str) -> None:
        self.worker = worker
        self.thread = QThread()
        self.thread.setObjectName(name)
        worker.moveToThread(self.thread)
        self.thread.started.connect(worker.run)
        # ``done`` is emitted from the worker thread; quit() is thread-safe.
        worker.done.connect(self.thread.quit)

    def start(self) -> None:
        self.thread.start()

    def is_running(self) -> bool:
        return self.thread.isRunning()

    def join(self, timeout_ms: int = -1) -> bool:
        """Ask the event loop to end and wait for the thread; True when it has ended."""
        self.thread.quit()
        if timeout_ms < 0:
            return self.thread.wait()
        return self.thread.wait(timeout_ms)


def rgb_to_qimage(rgb: np.ndarray) -> QImage:
    """A QImage that owns a copy of ``rgb`` (uint8 (H, W, 3) or (H, W)); safe in any thread."""
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    if rgb.ndim == 2:
        return QImage(rgb.data, w, h, rgb.strides[0], QImage.Format.Format_Grayscale8).copy()
    return QImage(rgb.data, w, h, rgb.strides[0], QImage.Format.Format_RGB888).copy()


def thumbnail(path: str, side: int) -> QImage:
    """Decode a photo and shrink it to fit ``side`` px; raises ImageReadError."""
    rgb = read_rgb(path, reduce_huge=True)  # a thumbnail needs 80 px, not 300 megapixels
    h, w = rgb.shape[:2]
    scale = side / max(h, w)
    if scale < 1:
        rgb = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                         interpolation=cv2.INTER_AREA)
    return rgb_to_qimage(rgb)


class ThumbnailSignals(QObject):
    # row, generation, image (or None), reason ("" when readable)
    loaded = Signal(int, int, object, str)


class ThumbnailJob(QRunnable):
    """Decodes a list of rows in a pool thread; skips rows another job has already claimed.

    ``claimed`` is a bytearray shared with the model: a row is claimed by setting its byte, which
    is atomic under the GIL, so each file is decoded once even when a visible-row request and the
    background sweep race for it.
    """

    def __init__(self, rows: list[int], paths: list[str], claimed: bytearray, side: int,
                 generation: int, signals: ThumbnailSignals, cancel: threading.Event) -> None:
        super().__init__()
        self._rows, self._paths, self._claimed = rows, paths, claimed
        self._side, self._generation = side, generation
        self._signals, self._cancel = signals, cancel

    def run(self) -> None:
        for row in self._rows:
            if self._cancel.is_set():
                return
            if self._claimed[row]:
                continue
            self._claimed[row] = 1
            try:
                image, reason = thumbnail(self._paths[row], self._side), ""
            except ImageReadError as exc:
                image, reason = None, exc.reason
            except Exception as exc:  # a thumbnail must never kill the pool thread
                image, reason = None, f"cannot read: {exc}"
            self._signals.loaded.emit(row, self._generation, image, reason)


def thumbnail_pool() -> QThreadPool:
    """A private pool with one thread: thumbnails must not compete with training for the CPU."""
    pool = QThreadPool()
    pool.setMaxThreadCount(1)
    return pool


class JobRunner(QObject):
    """Starts one-shot CallWorkers, keeps them alive until they end, joins them all on close.

    Callbacks must be bound methods of QObjects living in the GUI thread: Qt then queues each
    call into the GUI thread. (A lambda has no thread of its own and would run in the worker.)
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._threads: list[WorkerThread] = []

    def start(self, fn: Callable[[Callable[[int, int], None], threading.Event], Any], name: str,
              on_result: Callable[[Any], None] | None = None,
              on_error: Callable[[str, str], None] | None = None,
              on_progress: Callable[[int, int], None] | None = None,
              on_done: Callable[[], None] | None = None,
              on_note: Callable[[str, str], None] | None = None) -> CallWorker:
        worker = CallWorker(fn)
        for signal, slot in ((worker.result, on_result), (worker.crashed, on_error),
                             (worker.progress, on_progress), (worker.done, on_done),
                             (worker.note, on_note)):
            if slot is not None:
                signal.connect(slot)
        wt = WorkerThread(worker, name)
        wt.thread.finished.connect(self._reap)
        self._threads.append(wt)
        wt.start()
        return worker

    def running(self) -> int:
        return sum(1 for wt in self._threads if wt.is_running())

    @Slot()
    def _reap(self) -> None:
        self._threads = [wt for wt in self._threads if wt.is_running()]

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Cancel every job and wait for its thread; True when all ended in time."""
        for wt in self._threads:
            wt.worker.cancel.set()
        ok = all(wt.join(timeout_ms) for wt in self._threads)
        self._reap()
        return ok
