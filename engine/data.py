"""Training data: a folder of photos decoded once, kept small in memory, cropped at random.

Folders hold hundreds to tens of thousands of photos, so the cache keeps each photo at
1.125 × the training resolution (square, centre crop of the short side), never the original:
10,000 photos at 64 px cost ~170 MB. Samples follow PerturbGAN: random crop of the training size out
of the 1.125 × image (this matches the generator's foreground shift), plus a random horizontal flip.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from engine.errors import InputError
from engine.imageio import BadFile, ImageReadError, read_rgb, scan_images

log = logging.getLogger(__name__)

CACHE_SCALE = 1.125
MIN_SIDE = 16  # below this a photo carries nothing the generator can learn from
# Training sees the centre square of each photo: past this ratio of long to short side it keeps
# under a quarter of the photo, and the object is as likely outside it as in (a 5000x20 banner
# was trained on as a 20x20 crop without a word).
MAX_TRAIN_ASPECT = 4.0


def cache_side(size: int) -> int:
    return int(math.ceil(size * CACHE_SCALE))


def square_resize(rgb: np.ndarray, side: int) -> np.ndarray:
    """Centre-crop to a square on the short side and resize to ``side`` (area filter down)."""
    h, w = rgb.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    crop = rgb[top : top + s, left : left + s]
    interp = cv2.INTER_AREA if s > side else cv2.INTER_LINEAR
    return cv2.resize(crop, (side, side), interpolation=interp)


@dataclass
class ImageCache:
    """Decoded photos as one uint8 array (N, S, S, 3) plus the paths they came from."""

    images: np.ndarray
    paths: list[Path]
    bad: list[BadFile] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)


def load_folder(
    folder: str | os.PathLike[str],
    size: int,
    recursive: bool = False,
    workers: int | None = None,
    on_bad: Callable[[BadFile], None] | None = None,
    paths: Sequence[Path] | None = None,
) -> ImageCache:
    """Decode every photo of ``folder`` at ``cache_side(size)``; report and skip unreadable files.

    Decoding runs in threads: OpenCV releases the GIL, so this scales with cores. Folders the
    scan could not enter (link loops, no permission) are reported in ``bad`` like files. Huge
    JPEGs are decoded reduced (``reduce_huge``): the cache keeps a few dozen pixels per side anyway.
    """
    bad: list[BadFile] = []

    def report(item: BadFile) -> None:
        bad.append(item)
        if on_bad is not None:
            on_bad(item)

    files = list(paths) if paths is not None else scan_images(folder, recursive, on_skip=report)
    side = cache_side(size)

    def load(path: Path) -> np.ndarray | BadFile:
        try:
            rgb = read_rgb(path, min_side=MIN_SIDE, reduce_huge=True)
            h, w = rgb.shape[:2]
            if max(h, w) > MAX_TRAIN_ASPECT * min(h, w):
                return BadFile(str(path), f"too elongated to train on ({w}x{h}; at most "
                                          f"{MAX_TRAIN_ASPECT:g}:1, as training sees its centre square)")
            return square_resize(rgb, side)
        except ImageReadError as exc:
            return BadFile(exc.path, exc.reason)
        except Exception as exc:  # a decoder bug must not stop the folder
            return BadFile(str(path), f"{type(exc).__name__}: {exc}")

    images: list[np.ndarray] = []
    good: list[Path] = []
    n_workers = workers or min(8, (os.cpu_count() or 2))
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        for path, result in zip(files, pool.map(load, files), strict=True):
            if isinstance(result, BadFile):
                # Debug only: the caller reports bad files once (the trainer's warnings).
                log.debug("skipping %s: %s", result.path, result.reason)
                report(result)
            else:
                images.append(result)
                good.append(path)
    array = np.stack(images) if images else np.zeros((0, side, side, 3), np.uint8)
    return ImageCache(images=array, paths=good, bad=bad)


# Below this many usable photos (or the batch) a run is warned that its masks will be poor: the
# GAN needs many views of the subject. The app says it before a run, ``few_photos`` in the run.
FEW_PHOTOS = 50


def few_photos(count: int, batch: int) -> str | None:
    """The warning for a run on ``count`` usable photos at ``batch``, or None when enough."""
    if count >= max(FEW_PHOTOS, batch):
        return None
    return (f"only {count} usable photo{'s' if count != 1 else ''}: a GAN needs many views of the "
            f"subject ({FEW_PHOTOS}+, and at least the batch of {batch}); expect poor masks")


# Skipped files named in the one-line refusal of a folder without a usable photo.
NO_PHOTOS_REASONS = 3


def load_training_photos(folder: str | os.PathLike[str], size: int) -> tuple[ImageCache, list[str]]:
    """A training run's photos and one line per skipped file; ``InputError`` when not
    one photo is usable, naming why the first files were skipped (it said only "no readable
    images", so a folder of broken files gave no clue which or why)."""
    bad: list[str] = []
    cache = load_folder(folder, size, on_bad=lambda b: bad.append(f"{b.path}: {b.reason}"))
    if len(cache) == 0:
        if not bad:
            raise InputError(f"no readable images in {folder}")
        shown = "; ".join(bad[:NO_PHOTOS_REASONS])
        more = len(bad) - NO_PHOTOS_REASONS
        tail = f"; {more} more" if more > 0 else ""
        raise InputError(f"no readable images in {folder}: {len(bad)} skipped ({shown}{tail})")
    return cache, bad


def to_tensor(batch_uint8: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float in [-1, 1], the range every Peel net expects."""
    t = torch.from_numpy(np.ascontiguousarray(batch_uint8)).permute(0, 3, 1, 2).float()
    return t / 127.5 - 1.0


def to_uint8(batch: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) float in [-1, 1] -> (N, H, W, C) uint8 (C squeezed when 1)."""
    arr = ((batch.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().cpu()
    arr = arr.permute(0, 2, 3, 1).numpy()
    return arr[..., 0] if arr.shape[-1] == 1 else arr


class RandomCropDataset(Dataset):
    """Yields (3, size, size) float tensors in [-1, 1]: random crop + random horizontal flip."""

    def __init__(self, cache: ImageCache, size: int) -> None:
        if len(cache) == 0:
            raise ValueError("no readable images")
        self.cache = cache
        self.size = size

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, index: int) -> torch.Tensor:
        img = self.cache.images[index]
        slack = img.shape[0] - self.size
        top, left = np.random.randint(0, slack + 1, size=2)
        crop = img[top : top + self.size, left : left + self.size]
        if np.random.rand() < 0.5:
            crop = crop[:, ::-1]
        return to_tensor(crop[None])[0]

    def sample_batch(self, batch: int, generator: np.random.Generator) -> torch.Tensor:
        """A batch without DataLoader overhead: the cache is in memory, crops are cheap."""
        idx = generator.integers(0, len(self.cache), size=batch)
        slack = self.cache.images.shape[1] - self.size
        offs = generator.integers(0, slack + 1, size=(batch, 2))
        flips = generator.random(batch) < 0.5
        crops = np.empty((batch, self.size, self.size, 3), np.uint8)
        for k, (i, (top, left), flip) in enumerate(zip(idx, offs, flips, strict=True)):
            c = self.cache.images[i, top : top + self.size, left : left + self.size]
            crops[k] = c[:, ::-1] if flip else c
        return to_tensor(crops)
