"""Reading users' photos robustly: any common format, EXIF orientation applied, always 8-bit RGB.

Photo folders are messy (0-byte files, truncated downloads, 16-bit scans, CMYK JPEGs from print
workflows, text files with an image extension, broken links, huge panoramas). Every reader in Peel
goes through ``read_rgb`` so that all of them fail the same way: an ``ImageReadError`` with the path
and a reason a user can act on.

Huge images: OpenCV allocates the whole decoded image before it can say anything, and a 20000 x 15000
photo is 900 MB as 8-bit RGB (more while it is converted). So the dimensions are read from the file
header first (``engine/image_headers.py``: JPEG SOF, PNG IHDR, GIF, BMP, WebP, TIFF) and a file over ``MAX_PIXELS`` is
never handed to the full decoder; other formats OpenCV knows are not decoded at all. Decodes in
one process share a byte budget (``_DecodeBudget``), so more threads do not mean more memory. Callers that only need a small version (the training cache, GUI
thumbnails) pass ``reduce_huge=True``: such a JPEG is then decoded at 1/8 scale by libjpeg's DCT
scaling, which never allocates the full-size image (20000 x 15000 becomes 2500 x 1875, 14 MB). Everything else (other formats,
and callers that need the photo's true size, such as mask export, whose masks must match the photo)
gets a clear "too large" refusal instead of a decode that may exhaust memory.

Hostile folders: only regular files are opened (a FIFO would block ``open`` forever, a link to
``/dev/zero`` never ends), and at most ``MAX_FILE_BYTES`` of one is read (``read_file_bytes``).

Animated GIF and WebP files are read as their first frame, which is what viewers show as a still.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engine.image_headers import header_info, is_known_format

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
# Beyond this a decode would take gigabytes; OpenCV's own cap is 2**30 pixels (engine/__init__
# lowers it to this, for any header that lies to the parser here).
MAX_PIXELS = 250_000_000
# Bytes of the decoded image (width x height x 3 x bytes per sample), as the header announces it:
# an 8-bit RGB photo at MAX_PIXELS. A 16- or 32-bit image is refused at proportionally fewer pixels.
MAX_DECODE_BYTES = 3 * MAX_PIXELS
# Files are read whole before decoding; nothing a camera or scanner writes comes near this, while
# an endless or huge file (a link to /dev/zero, a 10 GB file named .jpg) is refused unread.
# PEEL_MAX_FILE_MB raises or lowers it.
MAX_FILE_BYTES = int(os.environ.get("PEEL_MAX_FILE_MB", "512")) * 1024 * 1024
# Only the 1/8 scale bit: colour is asked for with IMREAD_COLOR_RGB (REDUCED_COLOR_8 means BGR).
_REDUCED_8 = cv2.IMREAD_REDUCED_GRAYSCALE_8


class ImageReadError(Exception):
    """A file that cannot be used as a photo; ``reason`` is meant for the user."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class BadFile:
    path: str
    reason: str


def is_image_name(path: str | os.PathLike[str]) -> bool:
    # String functions, not Path: the scan calls this once per file of folders of 50,000 files.
    name = os.path.basename(os.fspath(path))
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def scan_images(
    folder: str | os.PathLike[str],
    recursive: bool = False,
    on_skip: Callable[[BadFile], None] | None = None,
) -> list[Path]:
    """List image files by extension, sorted, skipping hidden files and folders.

    Hidden names are skipped because Peel's own atomic writes use hidden temp files. Every
    image-named entry that is not a folder is listed (broken links, FIFOs, devices, links to
    them), so that reading it reports why it is not a photo instead of the file silently
    vanishing from the folder; ``read_rgb`` only ever opens regular files. A recursive scan follows links to folders
    (photo collections are often assembled with links) but enters each real folder once, so a
    link loop ends the scan instead of looping; loops and sub-folders that cannot be listed are
    passed to ``on_skip`` (and logged). Uses ``os.scandir`` (the file type comes with the
    listing, so 50,000 files cost no extra ``stat`` calls) and sorts strings, not ``Path``
    objects (50,000 files: 5.0 s -> 0.8 s on the loaded test machine); the order is unchanged.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"not a folder: {root}")

    def skip(path: str, reason: str) -> None:
        if on_skip is not None:  # the caller reports it: once, not also here
            log.debug("not scanned: %s: %s", path, reason)
            on_skip(BadFile(path, reason))
        else:
            log.warning("not scanned: %s: %s", path, reason)

    def listed(entry: os.DirEntry[str]) -> bool:
        if not is_image_name(entry.name):
            return False
        try:
            # Everything but a folder is listed: broken links, FIFOs, devices and links to them
            # too, so that ``read_rgb`` refuses them by name (one line each) instead of the file
            # silently vanishing from the folder.
            return not entry.is_dir()
        except OSError:
            return True

    if not recursive:
        with os.scandir(root) as it:
            names = sorted(e.name for e in it if listed(e))
        return [root / name for name in names]

    found: list[str] = []
    seen: dict[tuple[int, int], str] = {}
    stack = [str(root)]
    while stack:
        current = stack.pop()
        try:
            st = os.stat(current)
        except OSError as exc:
            skip(current, f"cannot open folder: {exc.strerror or exc}")
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:
            skip(current, f"folder link loop or duplicate: already scanned as {seen[key]}")
            continue
        seen[key] = current
        subdirs: list[str] = []
        try:
            with os.scandir(current) as it:
                for entry in it:
                    if entry.name.startswith("."):
                        continue
                    try:
                        is_dir = entry.is_dir()  # follows links to folders
                    except OSError:
                        is_dir = False
                    if is_dir:
                        subdirs.append(entry.path)
                    elif listed(entry):
                        found.append(entry.path)
        except OSError as exc:
            skip(current, f"cannot list folder: {exc.strerror or exc}")
            continue
        stack.extend(sorted(subdirs, reverse=True))  # depth first, in name order
    found.sort(key=lambda p: p.split(os.sep))  # component-wise, as Path objects compare
    return [Path(p) for p in found]


class _DecodeBudget:
    """Bytes of decoded pixels that the decoding threads of one process may hold at once.

    Every decode reserves what its header announces before OpenCV allocates it and gives it back
    when done; one bigger than the whole budget waits until it decodes alone. So N decode
    threads cannot multiply a near-limit image by N: at most ``MAX_DECODE_BYTES`` plus the
    small photos already under way, whatever the worker count.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        want = min(nbytes, self.total)
        with self._cond:
            self._cond.wait_for(lambda: self.used + want <= self.total)
            self.used += want
        try:
            yield
        finally:
            with self._cond:
                self.used -= want
                self._cond.notify_all()


_BUDGET = _DecodeBudget(MAX_DECODE_BYTES)
# Decodes bigger than this take a lock shared by all worker processes of a pool
# (``share_large_decodes``): the per-process budget cannot see the other processes, and N GrabCut
# workers each decoding a near-limit photo would need N times the memory.
LARGE_DECODE_BYTES = 256 * 1024 * 1024
_shared_large: contextlib.AbstractContextManager | None = None


def share_large_decodes(lock: contextlib.AbstractContextManager) -> None:
    """Use ``lock`` (a multiprocessing semaphore given to every worker of a pool) around each
    decode over ``LARGE_DECODE_BYTES``, so one pool decodes one large photo at a time."""
    global _shared_large
    _shared_large = lock


def _to_uint8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return (img.astype(np.uint32) * 255 // 65535).astype(np.uint8)
    if np.issubdtype(img.dtype, np.floating):
        finite = np.nan_to_num(img.astype(np.float32))
        hi = float(finite.max()) if finite.size else 1.0
        scale = 255.0 if hi <= 1.0 else 255.0 / hi
        return np.clip(finite * scale, 0, 255).astype(np.uint8)
    info = np.iinfo(img.dtype)
    return (img.astype(np.float64) * 255.0 / info.max).clip(0, 255).astype(np.uint8)


def _too_large(w: int, h: int, bytes_per_sample: int = 1) -> str:
    bits = 8 * bytes_per_sample
    # The limit at the image's own depth: "225 megapixels; the limit is 250 at 8 bits" read as
    # a contradiction for a 16-bit file refused at 125.
    limit = MAX_PIXELS // bytes_per_sample
    return (
        f"too large to decode safely ({w}x{h} = {w * h / 1e6:.0f} megapixels; the limit is "
        f"{limit / 1e6:.0f} at {bits} bits): save a smaller copy"
    )


def decode_rgb(
    data: bytes,
    path: str | os.PathLike[str] = "<bytes>",
    min_side: int = 1,
    reduce_huge: bool = False,
) -> np.ndarray:
    """Decode encoded image bytes to an (H, W, 3) uint8 RGB array, EXIF orientation applied.

    Only JPEG, PNG, GIF, BMP, WebP and TIFF are decoded, because their size is read from the
    header first (``header_size``): OpenCV would decode other formats it knows (PPM, HDR, ...)
    whatever their size. A file whose header announces more than ``MAX_PIXELS`` pixels (or
    ``MAX_DECODE_BYTES`` decoded) is refused before decoding; with ``reduce_huge`` a JPEG is
    decoded at 1/8 scale instead (see the module docstring): the callers that ask for it need
    under 100 px per side, and 1/8 keeps memory lowest. The result is then smaller than the
    photo, so only callers that resize anyway may ask for it.
    """
    if len(data) == 0:
        raise ImageReadError(path, "empty file (0 bytes)")
    if data[:2] == b"\xff\xd8" and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        # libjpeg decodes a truncated file with a grey bottom and only a warning.
        raise ImageReadError(path, "truncated JPEG (no end-of-image marker)")
    if not is_known_format(data):
        raise ImageReadError(
            path, "not a readable image (unknown format or corrupt data; Peel reads JPEG, PNG, "
            "TIFF, WebP, BMP and GIF)"
        )
    info = header_info(data)
    if info is None:
        raise ImageReadError(path, "not a readable image (corrupt header: no image size)")
    w, h, bps = info
    if w == 0 or h == 0:
        raise ImageReadError(path, f"not a readable image (its header says {w}x{h} pixels)")
    # IMREAD_COLOR_RGB (not UNCHANGED) applies EXIF orientation, turns grey, RGBA and CMYK into
    # 3 channels; ANYDEPTH keeps 16-bit so it can be scaled rather than clipped.
    flags = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_ANYDEPTH
    cost = w * h * 3 * bps
    if w * h > MAX_PIXELS or cost > MAX_DECODE_BYTES:
        if not (reduce_huge and data[:2] == b"\xff\xd8" and -(-w // 8) * -(-h // 8) <= MAX_PIXELS):
            raise ImageReadError(path, _too_large(w, h, bps))
        log.info("%s: %dx%d pixels, decoded at 1/8 scale", path, w, h)
        flags = cv2.IMREAD_COLOR_RGB | _REDUCED_8
        cost = -(-w // 8) * -(-h // 8) * 3
    buf = np.frombuffer(data, dtype=np.uint8)
    large = _shared_large if _shared_large is not None and cost > LARGE_DECODE_BYTES else None
    try:
        with large or contextlib.nullcontext(), _BUDGET.reserve(cost):
            img = cv2.imdecode(buf, flags)
    except cv2.error as exc:
        raise ImageReadError(path, f"cannot decode: {str(exc).strip().splitlines()[-1]}") from exc
    if img is None:
        raise ImageReadError(path, "not a readable image (unknown format or corrupt data)")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    h, w = img.shape[:2]
    if h * w > MAX_PIXELS:
        raise ImageReadError(path, _too_large(w, h))
    if min(h, w) < min_side:
        raise ImageReadError(path, f"too small ({w}x{h}; needs at least {min_side} px per side)")
    return np.ascontiguousarray(_to_uint8(img[:, :, :3]))


def _open_error(path: str | os.PathLike[str], exc: OSError) -> ImageReadError:
    """The reason a file could not be opened, in the user's terms (broken link, folder, ...)."""
    try:
        if os.path.islink(path) and not os.path.exists(path):
            target = os.readlink(path)
            if exc.errno == 40:  # ELOOP: the link points (via others) back at itself
                return ImageReadError(path, f"symbolic link loop ({target})")
            return ImageReadError(path, f"broken symbolic link (its target {target} is missing)")
        if stat.S_ISDIR(os.stat(path).st_mode):
            return ImageReadError(path, "is a folder, not a file")
    except OSError:
        pass
    return ImageReadError(path, f"cannot open: {exc.strerror or exc}")


_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_a_file(path: str | os.PathLike[str], mode: int) -> ImageReadError:
    kind = next((what for test, what in _KINDS if test(mode)), "not a regular file")
    link = ""
    if os.path.islink(path):
        link = f"symbolic link to {os.readlink(path)}, which is "
    return ImageReadError(path, f"{link}{kind}, not a photo file: skipped unread")


def _too_big_file(path: str | os.PathLike[str], size: int, limit: int) -> ImageReadError:
    return ImageReadError(
        path, f"file too large ({size / 2**20:.0f} MB; the limit is {limit / 2**20:.0f} MB, "
        "set by PEEL_MAX_FILE_MB)"
    )


def read_file_bytes(path: str | os.PathLike[str], limit: int | None = None) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (default ``MAX_FILE_BYTES``).

    Links are followed, then only a regular file is opened: a FIFO would block ``open`` forever
    and a device (``/dev/zero``) never ends. The open itself is non-blocking and the type is
    checked again on the open descriptor, so a file swapped for a FIFO in between cannot hang
    it; the read stops one byte past the limit whatever the file claims to hold.
    """
    limit = MAX_FILE_BYTES if limit is None else limit
    try:
        st = os.stat(path)
    except OSError as exc:
        raise _open_error(path, exc) from exc
    if not stat.S_ISREG(st.st_mode):
        raise _not_a_file(path, st.st_mode)
    if st.st_size > limit:
        raise _too_big_file(path, st.st_size, limit)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise _open_error(path, exc) from exc
    with os.fdopen(fd, "rb") as fh:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _not_a_file(path, mode)
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            raise ImageReadError(path, f"cannot read: {exc.strerror or exc}") from exc
    if len(data) > limit:
        raise _too_big_file(path, len(data), limit)
    return data


def read_rgb(
    path: str | os.PathLike[str], min_side: int = 1, reduce_huge: bool = False
) -> np.ndarray:
    """Read a photo as (H, W, 3) uint8 RGB as a viewer would display it.

    Bytes are read with Python (not ``cv2.imread``) so that non-ASCII paths work everywhere,
    through ``read_file_bytes`` (regular files only, size-capped). ``reduce_huge``: see
    ``decode_rgb``.
    """
    return decode_rgb(read_file_bytes(path), path, min_side=min_side, reduce_huge=reduce_huge)


def read_mask(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a mask or soft prediction as (H, W) uint8 grey (0 = background, 255 = object).

    Goes through ``read_rgb`` so masks fail the same way photos do (one clear reason per file).
    """
    rgb = read_rgb(path)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
