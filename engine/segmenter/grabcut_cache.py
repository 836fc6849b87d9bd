"""GrabCut masks of a training folder, computed once and kept under ``RUN_DIR/bootstrap/masks``.

This module imports no torch: its worker runs in fresh ("spawn") processes, which then start in a
fraction of a second. Spawn rather than fork because the trainer runs in a thread of a GUI process,
and forking a multi-threaded process can deadlock the child.

GrabCut runs on the photo with its short side at ``WORK_SIDE`` px: its smoothness term is tuned
for real image scales, and on 200 horse photos its IoU fell from 0.68 (full size, ~250 px) to 0.67
at 160 px, 0.53 at 96 px and 0.35 at 64 px, while 10-megapixel photos at full size would take
seconds each. Masks are cached per file under a key of path, size, mtime and GrabCut settings, so
an edited photo is recomputed and a resumed run is not.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import cv2
import numpy as np

from engine.atomic import write_bytes
from engine.baselines.grabcut import grabcut_mask
from engine.imageio import ImageReadError, read_mask, read_rgb

WORK_SIDE = 192
MARGIN = 0.1
ITERS = 5


def cache_key(path: str | os.PathLike[str]) -> str:
    """Stable name for one photo's mask; changes when the file or the GrabCut settings change."""
    p = Path(path).resolve()
    st = p.stat()
    # From bytes: a Linux file name need not be valid UTF-8 (it arrives surrogate-escaped), and
    # encoding it as UTF-8 raised and ended the whole training run. For valid names the bytes,
    # hence the keys of existing caches, are the same as before.
    text = f"|{st.st_size}|{st.st_mtime_ns}|{WORK_SIDE}|{MARGIN}|{ITERS}"
    return hashlib.sha1(os.fsencode(p) + text.encode("ascii")).hexdigest()[:20]


def working_copy(rgb: np.ndarray, side: int = WORK_SIDE) -> np.ndarray:
    """The photo with its short side at ``side`` (never enlarged)."""
    h, w = rgb.shape[:2]
    if min(h, w) <= side:
        return rgb
    scale = side / min(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def compute_one(task: tuple[str, str]) -> tuple[str, str | None]:
    """Worker: GrabCut one photo into ``dst`` (PNG, atomic). Returns (src, error or None)."""
    src, dst = task
    cv2.setNumThreads(1)  # one process per core already; nested threads only contend
    try:
        mask = grabcut_mask(working_copy(read_rgb(src)), margin=MARGIN, iters=ITERS)
        ok, buf = cv2.imencode(".png", mask)
        if not ok:
            return src, "PNG encoding failed"
        write_bytes(dst, buf.tobytes())
    except ImageReadError as exc:
        return src, exc.reason
    except Exception as exc:  # one odd file must not stop the folder
        return src, f"{type(exc).__name__}: {exc}"
    return src, None


def load_cached(dst: str | os.PathLike[str]) -> np.ndarray | None:
    """A cached mask (H, W) uint8, or None when it is missing or unreadable (then recomputed)."""
    try:
        return read_mask(dst)
    except ImageReadError:
        return None


def refine_centre(task: tuple[str, np.ndarray]) -> tuple[str, np.ndarray | None, str | None]:
    """Worker: GrabCut of the photo's centre square started from ``soft`` (uint8 0..255, any size).

    The centre square at ``WORK_SIDE`` is exactly what the training cache holds (``square_resize``),
    so the refined mask lines up with the cached image. Returns (src, mask or None, error or None).
    """
    src, soft = task
    cv2.setNumThreads(1)
    try:
        rgb = working_copy(read_rgb(src))
        h, w = rgb.shape[:2]
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        crop = np.ascontiguousarray(rgb[top : top + s, left : left + s])
        return src, grabcut_mask(crop, iters=ITERS, init_mask=soft), None
    except ImageReadError as exc:
        return src, None, exc.reason
    except Exception as exc:  # one odd file must not stop the folder
        return src, None, f"{type(exc).__name__}: {exc}"
