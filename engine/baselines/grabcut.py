"""GrabCut from a centred rectangle: the classic unsupervised baseline, and Peel's label-free prior.

Published comparisons initialise GrabCut with a rectangle inset by 10% on every side and run
5 iterations; the same setting here keeps Peel's figures comparable. With ``init_mask`` GrabCut
instead starts from a soft mask (probable object where it is >= 0.5), which refines a learned
segmenter's output to colour edges.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from engine.atomic import remove_stale_temps, write_bytes
from engine.imageio import BadFile, ImageReadError, read_rgb, scan_images
from engine.worker_pool import background_pool, stop_pool_now, usable_cores

log = logging.getLogger(__name__)


def centred_rect(h: int, w: int, margin: float) -> tuple[int, int, int, int]:
    """(x, y, width, height) of the centred rectangle inset by ``margin`` of each side."""
    x = int(round(margin * w))
    y = int(round(margin * h))
    return x, y, max(1, w - 2 * x), max(1, h - 2 * y)


def _rect_mask(h: int, w: int, margin: float) -> np.ndarray:
    x, y, rw, rh = centred_rect(h, w, margin)
    out = np.zeros((h, w), np.uint8)
    out[y : y + rh, x : x + rw] = 255
    return out


def _prob_to_u8(init_mask: np.ndarray) -> np.ndarray:
    m = np.asarray(init_mask)
    if m.ndim == 3:
        m = m[..., 0]
    if m.dtype == np.uint8:
        return m
    return (np.clip(m.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def grabcut_mask(
    rgb: np.ndarray,
    margin: float = 0.1,
    iters: int = 5,
    init_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Object mask (H, W) uint8 0/255 of an (H, W, 3) uint8 RGB photo.

    ``init_mask``: float probabilities in [0, 1] or uint8 0..255 of the photo's size (it is
    resized otherwise). When GrabCut cannot run (tiny image, a rectangle or mask with no object or
    no background samples) the initialisation itself is returned: it is the best guess available.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {rgb.shape}")
    h, w = rgb.shape[:2]
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2BGR)
    bgd = np.zeros((1, 65), np.float64)
    fgd = np.zeros((1, 65), np.float64)

    if init_mask is not None:
        prob = _prob_to_u8(init_mask)
        if prob.shape != (h, w):
            prob = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
        fallback = np.where(prob >= 128, 255, 0).astype(np.uint8)
        labels = np.where(prob >= 128, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
        n_fg = int(np.count_nonzero(fallback))
        if n_fg == 0 or n_fg == h * w or min(h, w) < 2:
            return fallback
        mode, rect = cv2.GC_INIT_WITH_MASK, None
    else:
        fallback = _rect_mask(h, w, margin)
        x, y, rw, rh = centred_rect(h, w, margin)
        if x < 1 or y < 1 or min(h, w) < 4:
            # No background outside the rectangle: GrabCut has nothing to learn background from.
            return fallback
        labels = np.zeros((h, w), np.uint8)
        mode, rect = cv2.GC_INIT_WITH_RECT, (x, y, rw, rh)

    # GrabCut seeds its colour models with k-means on OpenCV's global RNG; without a fixed seed a
    # mask would depend on how many images the same process segmented before (worker split).
    cv2.setRNGSeed(0)
    try:
        cv2.grabCut(bgr, labels, rect, bgd, fgd, iters, mode)
    except cv2.error as exc:
        log.debug("grabCut failed (%s); returning its initialisation", str(exc).strip()[-120:])
        return fallback
    return np.where((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD), 255, 0).astype(np.uint8)


def _encode_png(mask: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", mask)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _one_file(task: tuple[str, str, float, int]) -> BadFile | None:
    """Worker: read, segment, write atomically. Returns a BadFile instead of raising."""
    src, dst, margin, iters = task
    try:
        rgb = read_rgb(src)
        write_bytes(dst, _encode_png(grabcut_mask(rgb, margin=margin, iters=iters)))
    except ImageReadError as exc:
        return BadFile(exc.path, exc.reason)
    except Exception as exc:  # one odd file must not stop a folder of thousands
        return BadFile(src, f"{type(exc).__name__}: {exc}")
    return None


@dataclass
class FolderResult:
    written: int = 0
    skipped_existing: int = 0
    bad: list[BadFile] = field(default_factory=list)
    cancelled: bool = False


POLL_S = 0.2  # how often a cancel is looked for while masks are computed


def _outcomes(tasks: list[tuple[str, str, float, int]], n_workers: int,
              cancel: threading.Event | None) -> Iterator[BadFile | None]:
    """Each task's outcome in completion order; stops (workers ended at once) on ``cancel``."""
    if n_workers == 1 or len(tasks) <= 1:
        for task in tasks:
            if cancel is not None and cancel.is_set():
                return
            yield _one_file(task)
        return
    pool = background_pool(min(n_workers, len(tasks)))
    todo = iter(tasks)
    pending: set[Future[BadFile | None]] = set()
    finished = False
    try:
        while True:
            while len(pending) < 2 * n_workers and (task := next(todo, None)) is not None:
                pending.add(pool.submit(_one_file, task))
            if not pending:
                finished = True
                return
            done, pending = wait(pending, timeout=POLL_S, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()
            if cancel is not None and cancel.is_set():
                return
    finally:
        if finished:
            pool.shutdown()
        else:  # cancelled, or an exception (Ctrl-C) is passing through
            stop_pool_now(pool)


def grabcut_folder(
    in_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    workers: int | None = None,
    margin: float = 0.1,
    iters: int = 5,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> FolderResult:
    """GrabCut every photo of ``in_dir`` into ``out_dir``/NAME.png; existing outputs are kept.

    Worker processes, not threads: measured on 200 horse photos (2 cores) processes were faster
    (see bench/RESULTS.md). Output is written atomically, so a killed run resumes cleanly (the
    temp files a kill leaves are removed first). Setting ``cancel`` stops within a fraction of a
    second: workers are ended, not waited for; ``cancelled`` is then set on the result.
    """
    src_dir, dst_dir = Path(in_dir), Path(out_dir)
    if src_dir.resolve() == dst_dir.resolve():
        raise ValueError("the output folder must differ from the photo folder (photos are never overwritten)")
    result = FolderResult()
    tasks: list[tuple[str, str, float, int]] = []
    seen: set[str] = set()
    for path in scan_images(src_dir):
        if path.stem in seen:
            result.bad.append(BadFile(str(path), f"another photo already maps to {path.stem}.png"))
            continue
        seen.add(path.stem)
        dst = dst_dir / f"{path.stem}.png"
        if dst.exists():
            result.skipped_existing += 1
            continue
        tasks.append((str(path), str(dst), margin, iters))
    dst_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(*(dst for _, dst, _, _ in tasks))
    n_workers = max(1, workers or usable_cores())
    done = 0
    outcomes = _outcomes(tasks, n_workers, cancel)
    try:
        for bad in outcomes:
            done += 1
            if bad is None:
                result.written += 1
            else:
                log.debug("skipping %s: %s", bad.path, bad.reason)  # the caller reports it
                result.bad.append(bad)
            if progress is not None:
                progress(done, len(tasks))
    finally:
        outcomes.close()
    result.cancelled = done < len(tasks)
    result.bad.sort(key=lambda b: b.path)
    return result
