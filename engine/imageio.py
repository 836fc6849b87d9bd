"""Reading users' photos robustly: any common format, EXIF orientation applied, always 8-bit RGB.

Photo folders are messy (0-byte files, truncated downloads, 16-bit scans, CMYK JPEGs from print
workflows, text files with an image extension). Every reader in Peel goes through ``read_rgb`` so
that all of them fail the same way: an ``ImageReadError`` with the path and a reason a user can act on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# Beyond this a decode would take gigabytes; OpenCV's own cap is 2**30 pixels.
MAX_PIXELS = 250_000_000


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
    name = os.fspath(path)
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS and not Path(name).name.startswith(".")


def scan_images(folder: str | os.PathLike[str], recursive: bool = False) -> list[Path]:
    """List image files by extension, sorted, skipping hidden files and folders.

    Hidden names are skipped because Peel's own atomic writes use hidden temp files.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"not a folder: {root}")
    found: list[Path] = []
    if recursive:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            found.extend(Path(dirpath) / f for f in filenames if is_image_name(f))
    else:
        found = [p for p in root.iterdir() if p.is_file() and is_image_name(p.name)]
    return sorted(found)


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


def decode_rgb(data: bytes, path: str | os.PathLike[str] = "<bytes>", min_side: int = 1) -> np.ndarray:
    """Decode encoded image bytes to an (H, W, 3) uint8 RGB array, EXIF orientation applied."""
    if len(data) == 0:
        raise ImageReadError(path, "empty file (0 bytes)")
    if data[:2] == b"\xff\xd8" and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        # libjpeg decodes a truncated file with a grey bottom and only a warning.
        raise ImageReadError(path, "truncated JPEG (no end-of-image marker)")
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        # IMREAD_COLOR (not UNCHANGED) applies EXIF orientation, turns grey, RGBA and CMYK into
        # 3 channels; ANYDEPTH keeps 16-bit so it can be scaled rather than clipped.
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR_RGB | cv2.IMREAD_ANYDEPTH)
    except cv2.error as exc:
        raise ImageReadError(path, f"cannot decode: {str(exc).strip().splitlines()[-1]}") from exc
    if img is None:
        raise ImageReadError(path, "not a readable image (unknown format or corrupt data)")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    h, w = img.shape[:2]
    if h * w > MAX_PIXELS:
        raise ImageReadError(path, f"too large ({w}x{h} pixels)")
    if min(h, w) < min_side:
        raise ImageReadError(path, f"too small ({w}x{h}; needs at least {min_side} px per side)")
    return np.ascontiguousarray(_to_uint8(img[:, :, :3]))


def read_rgb(path: str | os.PathLike[str], min_side: int = 1) -> np.ndarray:
    """Read a photo as (H, W, 3) uint8 RGB as a viewer would display it.

    Bytes are read with Python (not ``cv2.imread``) so that non-ASCII paths work everywhere.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ImageReadError(path, f"cannot open: {exc.strerror or exc}") from exc
    return decode_rgb(data, path, min_side=min_side)


def read_mask(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a mask or soft prediction as (H, W) uint8 grey (0 = background, 255 = object).

    Goes through ``read_rgb`` so masks fail the same way photos do (one clear reason per file).
    """
    rgb = read_rgb(path)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
