"""The training data layer: bad files are reported and skipped, the cache stays small."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.data import (
    CACHE_SCALE,
    RandomCropDataset,
    cache_side,
    load_folder,
    square_resize,
    to_tensor,
    to_uint8,
)


def add_bad_files(folder: Path) -> dict[str, str]:
    """Drop one of each kind of broken file into ``folder``; returns name -> expected reason."""
    (folder / "zero.jpg").write_bytes(b"")
    good = (folder / "demo_00000.png").read_bytes()
    (folder / "text.jpg").write_text("hello")
    Image.new("RGB", (1, 1)).save(folder / "dot.png")
    Image.new("RGB", (500, 20)).save(folder / "banner.png")  # trained on as a 20x20 crop before
    Image.new("RGB", (80, 20)).save(folder / "wide.png")  # 4:1, kept
    jpg = folder / "cut.jpg"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(jpg, quality=90)
    jpg.write_bytes(jpg.read_bytes()[:200])
    assert good  # the real photos stay
    return {"zero.jpg": "empty file", "text.jpg": "not a readable image",
            "dot.png": "too small", "cut.jpg": "truncated", "banner.png": "too elongated"}


def test_load_folder_reports_bad_files_and_goes_on(tiny_demo_folder: Path) -> None:
    expected = add_bad_files(tiny_demo_folder)
    seen = []
    cache = load_folder(tiny_demo_folder, size=32, on_bad=seen.append)
    assert len(cache) == 13
    assert cache.images.shape == (13, cache_side(32), cache_side(32), 3)
    assert cache.images.dtype == np.uint8
    reasons = {Path(b.path).name: b.reason for b in cache.bad}
    assert set(reasons) == set(expected)
    for name, fragment in expected.items():
        assert fragment in reasons[name], (name, reasons[name])
    assert [b.path for b in seen] == [b.path for b in cache.bad]
    assert sorted(p.name for p in cache.paths if not p.stem.startswith("demo_")) == ["wide.png"]


def test_cache_is_one_and_an_eighth_of_size(tiny_demo_folder: Path) -> None:
    for size in (16, 32, 40):
        cache = load_folder(tiny_demo_folder, size=size, workers=1)
        side = int(np.ceil(size * CACHE_SCALE))
        assert cache.images.shape[1:] == (side, side, 3)


def test_non_square_photo_centre_cropped() -> None:
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, 20:60] = 255  # the centre square is white, the sides black
    out = square_resize(img, 20)
    assert out.shape == (20, 20, 3)
    assert out.min() == 255


def test_empty_folder_gives_empty_cache(tmp_path: Path) -> None:
    cache = load_folder(tmp_path, size=32)
    assert len(cache) == 0 and cache.images.shape == (0, 36, 36, 3)
    with pytest.raises(ValueError):
        RandomCropDataset(cache, 32)


def test_non_ascii_folder(tiny_demo_folder: Path, tmp_path: Path) -> None:
    dest = tmp_path / "ñandú 写真"
    shutil.copytree(tiny_demo_folder, dest)
    assert len(load_folder(dest, size=32)) == 12


def test_sample_batch_shape_range_and_determinism(tiny_demo_folder: Path) -> None:
    ds = RandomCropDataset(load_folder(tiny_demo_folder, size=32), 32)
    a = ds.sample_batch(8, np.random.default_rng(123))
    b = ds.sample_batch(8, np.random.default_rng(123))
    c = ds.sample_batch(8, np.random.default_rng(124))
    assert a.shape == (8, 3, 32, 32) and a.dtype == torch.float32
    assert a.min() >= -1.0 and a.max() <= 1.0
    assert a.min() < -0.5 and a.max() > 0.5  # real content, not a constant
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    item = ds[0]
    assert item.shape == (3, 32, 32)


def test_crops_come_from_the_cached_photo(tiny_demo_folder: Path) -> None:
    cache = load_folder(tiny_demo_folder, size=32)
    crops = to_uint8(RandomCropDataset(cache, 32).sample_batch(16, np.random.default_rng(0)))
    # Every 32 x 32 window of every cached photo and of its mirror image.
    both = np.concatenate([cache.images, cache.images[:, :, ::-1]])
    windows = np.lib.stride_tricks.sliding_window_view(both, (32, 32, 3), axis=(1, 2, 3))
    windows = windows.reshape(-1, 32, 32, 3)
    for crop in crops:
        assert (windows == crop).all(axis=(1, 2, 3)).any()


def test_tensor_round_trip() -> None:
    u8 = np.random.default_rng(0).integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    t = to_tensor(u8)
    assert t.shape == (2, 3, 5, 7)
    assert float(t.min()) >= -1 and float(t.max()) <= 1
    assert np.array_equal(to_uint8(t), u8)
    mask = to_uint8(torch.zeros(1, 1, 4, 4))
    assert mask.shape == (1, 4, 4) and (mask == 128).all()
