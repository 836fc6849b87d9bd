"""Masks for a whole folder: fast, resumable, splittable across machines, honest about failures.

Pipeline (one call of ``export_masks``):
- a thread pool reads, decodes (EXIF applied) and prepares photos ahead of the model; OpenCV
  releases the GIL, so these threads really run in parallel with the session;
- the calling thread groups prepared photos by padded shape (a batch must share one shape),
  runs the session on full buckets, and flushes a bucket early when it has waited ``max_wait_s``
  or when the buffered photos exceed their count/byte budget (mixed-size folders);
- a second pool resizes each probability map back to its photo, encodes the PNG and writes it
  atomically, so the session never waits for the disk.
Every queue is bounded, so memory does not grow with the folder.

Resuming: an output that exists is complete (atomic writes), so a rerun skips it; a killed run
resumes where it stopped. ``overwrite`` redoes everything.

Which photos go where (shards, name clashes): ``engine.export.jobs``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from engine.atomic import DiskFullError, write_bytes
from engine.daemon_pool import DaemonPool
from engine.export import annotations
from engine.export.jobs import ExportSetupError, Job, check_folders, plan_jobs, remove_stale_temps
from engine.export.metadata import ModelContractError
from engine.export.out_dir import RunLog, writable_out_dir
from engine.imageio import BadFile, ImageReadError, read_rgb
from engine.segmenter.infer import finish, prepare
from engine.segmenter.refine import grabcut_refine

log = logging.getLogger(__name__)

FORMATS = ("mask", "soft", "cutout", *annotations.ANNOTATION_FORMATS)
LOG_NAME = "peel-segment.log"
# The net sees the short side at its training size; beyond this aspect the long side explodes.
MAX_ASPECT = 64
BUFFER_BYTES = 512 * 1024 * 1024
# How often the pipeline looks at the cancel flag while it waits for photos: Ctrl-C and the GUI's
# Cancel must answer within a second even when every reader is stuck.
POLL_S = 0.2
# After a cancel, writes already running get this long to land (and be counted); a write still
# running then is abandoned (atomic: it lands whole, or leaves a temp the next run removes).
CANCEL_GRACE_S = 0.5


class BatchRunner(Protocol):
    """What the pipeline needs from a model: ``SegmenterSession`` or a stand-in (benchmarks)."""

    @property
    def size(self) -> int: ...

    @property
    def stride(self) -> int: ...

    def run(self, batch: np.ndarray) -> np.ndarray: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class ExportOptions:
    format: str = "mask"
    threshold: float = 0.5
    recursive: bool = False
    overwrite: bool = False
    workers: int | None = None  # decode threads and encode threads each; default: cores
    device: str = "auto"
    shard: tuple[int, int] | None = None  # (i, n), 1 <= i <= n
    batch: int = 8
    max_wait_s: float = 1.0
    # One GrabCut pass started from the net's mask snaps it to the photo's colour edges: demo IoU
    # 0.80 -> 0.97, horses 0.66 -> 0.68 (bench/RESULTS.md). Costs ~0.1 s per photo; the output
    # is then binary (soft format included).
    refine: bool = False

    def validate(self) -> None:
        if self.format not in FORMATS:
            raise ExportSetupError(f"unknown format {self.format!r} ({', '.join(FORMATS)})")
        if not 0.0 <= self.threshold <= 1.0:
            raise ExportSetupError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.batch < 1:
            raise ExportSetupError("batch must be at least 1")
        if self.workers is not None and self.workers < 1:
            raise ExportSetupError("workers must be at least 1")
        if self.shard is not None:
            i, n = self.shard
            if not 1 <= i <= n:
                raise ExportSetupError(f"shard must be I/N with 1 <= I <= N, got {i}/{n}")


@dataclass(frozen=True)
class ExportProgress:
    processed: int  # written + failed so far in this run
    todo: int  # photos this run has to process (existing outputs excluded)
    written: int
    failed: int
    skipped: int
    elapsed_s: float

    @property
    def rate(self) -> float:
        return self.processed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        return (self.todo - self.processed) / self.rate if self.rate > 0 else None


@dataclass
class Summary:
    total: int  # photos in this shard (clashes included)
    written: int
    skipped: int  # output already there
    failed: int
    provider: str
    seconds: float
    out_dir: Path
    log_path: Path
    cancelled: bool = False
    failures: list[BadFile] = field(default_factory=list)
    warning: str | None = None
    # Why the run stopped before the end (a full disk): every later write would fail the same
    # way, so the export stops at the first one instead of failing each remaining photo.
    stopped: str | None = None
    # Threads still busy when the run returned (a cancel does not wait for them: a read may be
    # stuck). A command-line process should end with os._exit: the interpreter's own exit can
    # wait on them, or abort when one is inside OpenCV.
    abandoned_threads: int = 0

    @property
    def rate(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0


class _DiskFull(BadFile):
    """The write of this photo's output hit a full disk (stops the export)."""


@dataclass
class _Prepared:
    job: Job
    x: np.ndarray | None
    resized: tuple[int, int]
    hw: tuple[int, int]
    rgb: np.ndarray | None  # kept only for cutouts

    @property
    def nbytes(self) -> int:
        return (self.x.nbytes if self.x is not None else 0) + (
            self.rgb.nbytes if self.rgb is not None else 0
        )


def _load(job: Job, size: int, stride: int, keep_rgb: bool) -> _Prepared | BadFile:
    try:
        rgb = read_rgb(job.src)
        h, w = rgb.shape[:2]
        if max(h, w) > MAX_ASPECT * min(h, w):
            return BadFile(str(job.src), f"aspect ratio too extreme ({w}x{h}; at most {MAX_ASPECT}:1)")
        x, resized = prepare(rgb, size, stride)
        return _Prepared(job, x, resized, (h, w), rgb if keep_rgb else None)
    except ImageReadError as exc:
        return BadFile(str(job.src), exc.reason)
    except Exception as exc:  # a decoder bug or out of memory must not end the whole run
        return BadFile(str(job.src), f"cannot prepare: {type(exc).__name__}: {exc}")


def encode_output(prob: np.ndarray, fmt: str, threshold: float, rgb: np.ndarray | None) -> bytes:
    """PNG bytes for one photo-sized probability map: 0/255 mask, 8-bit soft, or RGBA cutout."""
    if fmt == "soft":
        img = np.clip(np.rint(prob * 255.0), 0, 255).astype(np.uint8)
    else:
        img = np.where(prob >= threshold, np.uint8(255), np.uint8(0))
        if fmt == "cutout":
            if rgb is None:
                raise ValueError("cutout needs the photo")
            bgra = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA)
            bgra[:, :, 3] = img
            img = bgra
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def _write(
    item: _Prepared, prob: np.ndarray, fmt: str, threshold: float, refine: bool = False
) -> BadFile | None:
    try:
        soft = finish(prob, item.resized, item.hw)
        if refine and item.rgb is not None:
            # The user's threshold picks the starting object (GrabCut only reads >= 0.5).
            start = (soft >= threshold).astype(np.float32)
            soft = grabcut_refine(item.rgb, start).astype(np.float32) / 255.0
        if isinstance(item.job, annotations.AnnotationJob):
            data = annotations.encode_annotation(item.job, soft >= threshold)
        else:
            data = encode_output(soft, fmt, threshold, item.rgb)
        write_bytes(item.job.out, data)
        return None
    except DiskFullError as exc:
        return _DiskFull(str(item.job.src), str(exc))
    except Exception as exc:  # disk full, permissions: report per file, keep going
        return BadFile(str(item.job.src), f"cannot write {item.job.out}: {exc}")


def _open_model(
    model: str | os.PathLike[str] | BatchRunner, device: str,
    shard: tuple[int, int] | None = None,
) -> BatchRunner:
    if isinstance(model, (str, os.PathLike)):
        from engine.export.sessions import SegmenterSession, cuda_device_count, shard_device_id

        gpu = shard_device_id(shard, cuda_device_count()) if device != "cpu" else 0
        return SegmenterSession(model, device=device, device_id=gpu)
    return model


def export_masks(
    model: str | os.PathLike[str] | BatchRunner,
    in_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    options: ExportOptions | None = None,
    progress: Callable[[ExportProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> Summary:
    """Write one PNG per photo of ``in_dir`` into ``out_dir`` (same relative name, ``.png``).

    ``model`` is an ONNX file path or an object with ``size``, ``stride``, ``run`` and
    ``describe`` (the GUI may pass an open session). ``progress`` is called from this thread
    after each photo; setting ``cancel`` stops soon, leaving only complete files behind.
    """
    options = options or ExportOptions()
    options.validate()
    in_path, out_path = Path(in_dir), Path(out_dir)
    check_folders(in_path, out_path, options.recursive)
    started = time.perf_counter()
    jobs, clashes = plan_jobs(in_path, out_path, options.recursive, options.shard)
    jobs = [annotations.retarget(j, options.format, in_path, out_path) for j in jobs]
    runner = _open_model(model, options.device, options.shard)
    writable_out_dir(out_path)
    run_log = RunLog(out_path / LOG_NAME)
    todo = jobs if options.overwrite else [j for j in jobs if not j.out.exists()]
    remove_stale_temps(todo)
    skipped = len(jobs) - len(todo)
    summary = Summary(
        total=len(jobs) + len(clashes),
        written=0,
        skipped=skipped,
        failed=0,
        provider=runner.describe(),
        seconds=0.0,
        out_dir=out_path,
        log_path=out_path / LOG_NAME,
        warning=getattr(runner, "warning", None),
    )
    shard_text = f" shard {options.shard[0]}/{options.shard[1]}" if options.shard else ""
    run_log.line(
        f"start: {in_path} -> {out_path}{shard_text}, format {options.format}, "
        f"{len(todo)} to do, {skipped} already done, on {summary.provider}"
    )
    log.info("%d photos to segment, %d already done, on %s", len(todo), skipped, summary.provider)

    def fail(bad: BadFile) -> None:
        summary.failed += 1
        summary.failures.append(bad)
        run_log.line(f"FAILED {bad.path}: {bad.reason}")
        # Debug only: the caller reports failures (the CLI once per file, the GUI in its list).
        log.debug("skipped %s: %s", bad.path, bad.reason)

    def report() -> None:
        if progress is not None:
            progress(
                ExportProgress(
                    processed=summary.written + summary.failed - len(clashes),
                    todo=len(todo),
                    written=summary.written,
                    failed=summary.failed,
                    skipped=skipped,
                    elapsed_s=time.perf_counter() - started,
                )
            )

    for bad in clashes:
        fail(bad)
    status = "interrupted"  # stays so if an exception (Ctrl-C) escapes the pipeline
    try:
        stopped = _pipeline(runner, todo, options, fail, summary, report, cancel)
        summary.cancelled = stopped and summary.stopped is None
        status = "cancelled" if summary.cancelled else "finished"
        merged = annotations.finish(options.format, out_path, in_path)  # also after a cancel
        if merged is not None:
            run_log.line(f"merged every photo's annotations into {merged}")
        if summary.stopped is not None:
            status = f"stopped ({summary.stopped})"
    finally:
        summary.seconds = time.perf_counter() - started
        run_log.line(
            f"{status}: {summary.written} written, "
            f"{summary.skipped} skipped (already done), {summary.failed} failed, "
            f"{summary.seconds:.1f} s"
        )
        run_log.close()
    return summary


def _pipeline(
    runner: BatchRunner,
    todo: list[Job],
    options: ExportOptions,
    fail: Callable[[BadFile], None],
    summary: Summary,
    report: Callable[[], None],
    cancel: threading.Event | None,
) -> bool:
    """Run the decode -> batch -> encode pipeline; returns True when cancelled."""
    from engine.export.sessions import cpu_threads

    workers = options.workers or cpu_threads()
    batch = options.batch
    prefetch = 2 * workers + batch
    max_buffered = 4 * batch
    max_encodes = 2 * workers + batch
    keep_rgb = options.format == "cutout" or options.refine

    decoders = DaemonPool(workers, "peel-decode")
    encoders = DaemonPool(workers, "peel-encode")
    pending: set[Future[_Prepared | BadFile]] = set()
    buckets: dict[tuple[int, ...], list[_Prepared]] = {}
    since: dict[tuple[int, ...], float] = {}
    encodes: deque[Future[BadFile | None]] = deque()
    buffered_bytes = 0

    def cancelled() -> bool:
        return (cancel is not None and cancel.is_set()) or summary.stopped is not None

    def collect(fut: Future[BadFile | None]) -> None:
        bad = fut.result()
        if isinstance(bad, _DiskFull) and summary.stopped is None:
            summary.stopped = bad.reason
            log.error("stopping the export: %s", bad.reason)
        if bad is None:
            summary.written += 1
        else:
            fail(bad)
        report()

    def user_cancelled() -> bool:
        return cancel is not None and cancel.is_set()

    def collect_oldest() -> None:
        """Collect the oldest write, waking every POLL_S so that a cancel is seen at once
        (a --refine write runs GrabCut, seconds on a big photo)."""
        while not encodes[0].done():
            if user_cancelled():
                return
            wait([encodes[0]], timeout=POLL_S)
        collect(encodes.popleft())

    def run_bucket(shape: tuple[int, ...]) -> None:
        nonlocal buffered_bytes
        items = buckets.pop(shape)
        since.pop(shape)
        buffered_bytes -= sum(i.nbytes for i in items)
        x = np.stack([i.x for i in items])
        for i in items:
            i.x = None
        try:
            probs = runner.run(x)
            if len(probs) != len(items):
                raise ModelContractError(
                    f"the model returned {len(probs)} masks for {len(items)} photos")
        except ModelContractError as exc:  # every photo would fail alike: stop here
            if summary.stopped is None:
                summary.stopped = f"model error: {exc}"
                log.error("stopping the export: %s", exc)
            return
        except Exception as exc:
            for i in items:
                fail(BadFile(str(i.job.src), f"inference failed: {type(exc).__name__}: {exc}"))
                report()
            return
        for i, prob in zip(items, probs, strict=True):
            if not np.isfinite(prob).all():
                fail(BadFile(str(i.job.src), "the model's output for this photo has NaN or "
                             "infinite values; nothing written"))
                report()
                continue
            encodes.append(encoders.submit(_write, i, prob, options.format, options.threshold,
                                           options.refine))
        while len(encodes) > max_encodes and not user_cancelled():
            collect_oldest()
        while encodes and encodes[0].done():
            collect(encodes.popleft())

    jobs = iter(todo)
    exhausted = False
    stopped = False
    try:
        while True:
            if cancelled():
                stopped = True
                break
            while not exhausted and len(pending) < prefetch:
                job = next(jobs, None)
                if job is None:
                    exhausted = True
                else:
                    pending.add(decoders.submit(_load, job, runner.size, runner.stride, keep_rgb))
            if not pending:
                break
            done, _ = wait(pending, timeout=min(POLL_S, options.max_wait_s),
                           return_when=FIRST_COMPLETED)
            for fut in done:
                pending.discard(fut)
                item = fut.result()
                if isinstance(item, BadFile):
                    fail(item)
                    report()
                    continue
                assert item.x is not None
                shape = item.x.shape
                buckets.setdefault(shape, []).append(item)
                since.setdefault(shape, time.monotonic())
                buffered_bytes += item.nbytes
                if len(buckets[shape]) >= batch and not cancelled():
                    run_bucket(shape)
            now = time.monotonic()
            for shape in [s for s, t in since.items() if now - t > options.max_wait_s]:
                if not cancelled():
                    run_bucket(shape)
            while buckets and not cancelled() and (
                sum(len(b) for b in buckets.values()) > max_buffered
                or buffered_bytes > BUFFER_BYTES
            ):
                run_bucket(min(since, key=since.__getitem__))  # the oldest waits least longer
        if not stopped:
            for shape in list(buckets):
                if cancelled():
                    stopped = True
                    break
                run_bucket(shape)
        while encodes and not user_cancelled():  # finish what was started: already paid for
            collect_oldest()
        if user_cancelled() and encodes:
            stopped = True
            _drain_cancelled(encodes, collect)
    finally:
        for fut in pending:
            fut.cancel()
        for fut in encodes:
            fut.cancel()
        # Never wait for the threads: one may be stuck in a read (see engine.daemon_pool).
        decoders.shutdown(wait=False)
        encoders.shutdown(wait=False)
        summary.abandoned_threads = decoders.busy + encoders.busy
    return stopped


def _drain_cancelled(
    encodes: deque[Future[BadFile | None]], collect: Callable[[Future[BadFile | None]], None]
) -> None:
    """After a cancel: drop writes not started, count those that land within the grace time,
    abandon the rest (left in ``encodes``, cancelled by the caller)."""
    for fut in encodes:
        fut.cancel()
    deadline = time.monotonic() + CANCEL_GRACE_S
    while encodes:
        fut = encodes[0]
        if fut.cancelled():
            encodes.popleft()
            continue
        try:
            fut.result(timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            running = sum(not f.cancelled() and not f.done() for f in encodes)
            log.warning("%d writes still running at cancel; not counted", running)
            encodes.clear()
            return
        collect(encodes.popleft())
