"""Background work for the GUI: the only module that touches threads (superqt's workers on Qt's
thread pool, and the thumbnail pool).

Everything here follows one rule: the GUI thread and a worker talk only through signals delivered
to slots (queued across threads), never through shared widgets. Engine code runs unchanged inside
the workers; it knows nothing about Qt.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import cv2
import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot
from PySide6.QtGui import QImage
from superqt.utils import FunctionWorker, GeneratorWorker, create_worker

from engine.imageio import ImageReadError, read_rgb

log = logging.getLogger(__name__)


# superqt runs its workers on Qt's global pool, which Qt sizes to the core count (2 on the test
# machine): one training run and one viewer inference would fill it, and a folder listing or an
# export would wait behind them. These jobs mostly wait on I/O or on torch's own threads (whose
# number the session sets), so the pool may hold more of them than there are cores.
MIN_POOL_THREADS = 8


# The GUI thread gives the GIL up at every call from Qt into Python (a slot, a timer, each paint()
# and boundingRect() of a pyqtgraph item) and must win it back from a worker running Python code;
# each win waits up to the switch interval. At CPython's 5 ms, a plot update that needs 4.5 ms of
# CPU took 24.5 ms beside a busy Python thread; at 0.5 ms, 16.7 ms (bench/RESULTS.md, "GUI latency
# ... session 3"). Only a thread waiting for the GIL asks for a switch, so a worker running alone
# loses nothing.
GIL_SWITCH_INTERVAL_S = 0.0005


def favour_gui_thread() -> None:
    """Let the GUI thread win the GIL back quickly from the workers (see GIL_SWITCH_INTERVAL_S)."""
    if sys.getswitchinterval() > GIL_SWITCH_INTERVAL_S:
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)


def _log_warning(args: tuple) -> None:
    """superqt catches warnings raised inside a worker and emits them (``warned``) instead of
    printing them; they go to the log, where the user of ``peel-gui`` in a terminal sees them."""
    message, category, filename, lineno = args[:4]
    log.warning("%s", warnings.formatwarning(message, category, filename, lineno).strip())


def _make_room() -> None:
    pool = QThreadPool.globalInstance()
    if pool.maxThreadCount() < MIN_POOL_THREADS:
        pool.setMaxThreadCount(MIN_POOL_THREADS)


class JobSignals(QObject):
    """What a job tells the GUI thread besides its result: progress, notes and a failure as
    (message, traceback) text. Lives in the GUI thread, so every emit from a worker is queued."""

    progress = Signal(int, int)
    note = Signal(str, str)  # text, level
    preview = Signal(object)  # an engine Preview the job's training made
    crashed = Signal(str, str)  # message, traceback

    def __init__(self) -> None:
        super().__init__()
        self.delivered = False  # the worker's last signal (finished) has reached the GUI thread

    @Slot()
    def mark_delivered(self) -> None:
        self.delivered = True

    @Slot(object)
    def report_error(self, exc: BaseException) -> None:
        log.error("background job failed", exc_info=exc)
        self.crashed.emit(f"{type(exc).__name__}: {exc}",
                          "".join(traceback.format_exception(exc)))


class JobProgress:
    """What a job gets as ``progress``: ``progress(done, total)``, and ``progress.note(text,
    level)`` for a status line (e.g. the stage a long job is in); both become signals."""

    def __init__(self, signals: JobSignals) -> None:
        self._signals = signals

    def __call__(self, done: int, total: int) -> None:
        self._signals.progress.emit(int(done), int(total))

    def note(self, text: str, level: str = "info") -> None:
        self._signals.note.emit(str(text), str(level))

    def preview(self, preview: Any) -> None:
        """A preview of the training the job runs; the GUI stores it and draws the latest on a
        timer (``app.preview.PreviewPanel``), so a burst of them costs one redraw."""
        self._signals.preview.emit(preview)


class Job:
    """One ``fn(progress, cancel)`` call on a superqt FunctionWorker.

    ``cancel`` is a ``threading.Event`` the engine function polls; ``join`` waits for the call to
    return (a job that never got a thread has nothing to wait for).
    """

    def __init__(self, fn: Callable[[JobProgress, threading.Event], Any], name: str) -> None:
        self.name = name
        self.cancel = threading.Event()
        self._gate = threading.Lock()  # a cancel and a start never cross (see ``stop``)
        self.started = threading.Event()
        self.ended = threading.Event()
        self.signals = JobSignals()
        progress = JobProgress(self.signals)

        def work() -> Any:
            with self._gate:
                if self.cancel.is_set():
                    return None  # cancelled while queued for a thread: never runs
                self.started.set()
            threading.current_thread().name = name
            try:
                return fn(progress, self.cancel)
            finally:
                self.ended.set()

        self.worker: FunctionWorker = create_worker(work, _start_thread=False, _ignore_errors=True)
        self.worker.errored.connect(self.signals.report_error)
        self.worker.warned.connect(_log_warning)
        self.worker.finished.connect(self.signals.mark_delivered)

    def running(self) -> bool:
        return self.started.is_set() and not self.ended.is_set()

    def stop(self) -> None:
        """Ask the call to end. A job still queued for a thread will then never run: without the
        gate it could start after ``join`` had found it not started, and outlive the window."""
        with self._gate:
            self.cancel.set()

    def join(self, timeout_ms: int = -1) -> bool:
        if not self.started.is_set():
            return True
        return self.ended.wait(None if timeout_ms < 0 else timeout_ms / 1000)


class EventStream:
    """Drains a generator of engine events on a superqt GeneratorWorker; each item reaches
    ``on_event`` in the GUI thread, then ``on_done``.

    The generator must not raise: superqt swallows a RuntimeError escaping a generator (it takes
    it for a deleted worker) and never says the work finished, so the caller's factory turns its
    own failures into events (``app.run_session`` yields the engine's ``Failed``).
    """

    def __init__(self, factory: Callable[[], Iterator[Any]], name: str,
                 on_event: Callable[[Any], None], on_done: Callable[[], None]) -> None:
        self.started = threading.Event()
        self.ended = threading.Event()

        def events() -> Iterator[Any]:
            self.started.set()
            threading.current_thread().name = name
            try:
                yield from factory()
            finally:
                self.ended.set()

        self.worker: GeneratorWorker = create_worker(events, _start_thread=False,
                                                     _ignore_errors=True)
        self.worker.yielded.connect(on_event)
        self.worker.finished.connect(on_done)
        self.worker.errored.connect(lambda exc: log.error("event stream failed", exc_info=exc))
        self.worker.warned.connect(_log_warning)

    def start(self) -> None:
        _make_room()
        favour_gui_thread()
        self.worker.start()

    def is_running(self) -> bool:
        return self.started.is_set() and not self.ended.is_set()

    def join(self, timeout_ms: int = -1) -> bool:
        if not self.started.is_set():
            return True
        return self.ended.wait(None if timeout_ms < 0 else timeout_ms / 1000)


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
    """Starts one-shot Jobs, keeps them until they end, joins them all on close.

    Callbacks must be bound methods of QObjects living in the GUI thread: Qt then queues each
    call into the GUI thread. (A lambda has no thread of its own and would run in the worker.)
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._jobs: list[Job] = []
        self._closed = False

    def start(self, fn: Callable[[Any, threading.Event], Any], name: str,
              on_result: Callable[[Any], None] | None = None,
              on_error: Callable[[str, str], None] | None = None,
              on_progress: Callable[[int, int], None] | None = None,
              on_done: Callable[[], None] | None = None,
              on_note: Callable[[str, str], None] | None = None,
              on_preview: Callable[[Any], None] | None = None) -> Job:
        job = Job(fn, name)
        if self._closed:  # the window is closing: nothing new starts (a late viewer request)
            job.stop()
            return job
        for signal, slot in ((job.worker.returned, on_result), (job.signals.crashed, on_error),
                             (job.signals.progress, on_progress), (job.worker.finished, on_done),
                             (job.signals.note, on_note), (job.signals.preview, on_preview)):
            if slot is not None:
                signal.connect(slot)
        job.worker.finished.connect(self._reap)
        self._jobs.append(job)
        _make_room()
        favour_gui_thread()
        job.worker.start()
        return job

    def running(self) -> int:
        return sum(1 for job in self._jobs if job.running())

    @Slot()
    def _reap(self) -> None:
        # Kept until its last signal arrived: the queued calls need the job's signal object alive.
        self._jobs = [job for job in self._jobs if not job.signals.delivered]

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Cancel every job and wait for it; True when all ended in time."""
        self._closed = True
        for job in self._jobs:
            job.stop()
        ok = all(job.join(timeout_ms) for job in self._jobs)
        self._reap()
        return ok
