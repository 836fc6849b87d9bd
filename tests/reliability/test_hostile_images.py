"""Decompression bombs (issue #15): a huge image is refused from its header before OpenCV
allocates it, small images of every layout still decode, and decodes share one byte budget."""

from __future__ import annotations

import threading
import time
import zlib
from pathlib import Path

import pytest
from hostile import png_header_only, tiff_bytes
from in_process import read_in_thread

from engine.image_headers import header_size
from engine.imageio import read_rgb


@pytest.mark.parametrize("layout", [{}, {"big_endian": True}, {"bigtiff": True},
                                    {"bigtiff": True, "big_endian": True}])
def test_tiff_size_is_read_from_its_directory(layout: dict) -> None:
    """The directory sits after the pixel data here, as in many TIFFs; the old parser gave None
    for every TIFF, so a 600 KB 20000 x 20000 file was decoded in full (2.9 GB)."""
    assert header_size(tiff_bytes(20_000, 30_000, **layout)) == (20_000, 30_000)


@pytest.mark.parametrize("layout", [{}, {"big_endian": True}, {"bigtiff": True}])
def test_tiff_bomb_refused_before_decoding(tmp_path: Path, layout: dict) -> None:
    path = tmp_path / "bomb.tif"
    path.write_bytes(tiff_bytes(20_000, 20_000, strip=b"x\x9c\x03\x00\x00\x00\x00\x01", **layout))
    t = time.perf_counter()
    reason = read_in_thread(path)
    assert "too large" in reason and "20000x20000" in reason, reason
    assert time.perf_counter() - t < 1.0


def test_small_tiffs_of_every_layout_still_decode(tmp_path: Path) -> None:

    rows = bytes(range(64)) * 48
    for k, layout in enumerate([{}, {"big_endian": True}, {"bigtiff": True}]):
        path = tmp_path / f"ok{k}.tif"
        path.write_bytes(tiff_bytes(64, 48, strip=zlib.compress(rows), **layout))
        rgb = read_rgb(path)
        assert rgb.shape == (48, 64, 3) and list(rgb[0, :4, 0]) == [0, 1, 2, 3]


def test_deep_images_are_refused_by_decoded_bytes_not_just_pixels(tmp_path: Path) -> None:
    """A 16-bit 12000 x 12000 RGB PNG is under the pixel limit but decodes to 864 MB."""
    path = tmp_path / "deep.png"
    path.write_bytes(png_header_only(12_000, 12_000, depth=16))
    reason = read_in_thread(path)
    assert "too large" in reason and "144 megapixels" in reason, reason
    # The limit said at the file's own depth: "the limit is 250 at 8 bits" read as a contradiction.
    assert "the limit is 125 at 16 bits" in reason, reason


def test_formats_without_a_checked_header_are_not_decoded(tmp_path: Path) -> None:
    """OpenCV decodes PPM (and more) by content whatever the name says, with no size check."""
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"P6\n60000 60000\n255\n" + bytes(300))
    assert "unknown format" in read_in_thread(path)


def test_decodes_share_one_byte_budget() -> None:
    """N decode threads must not multiply a near-limit image by N."""
    from engine.imageio import _DecodeBudget

    budget = _DecodeBudget(100)
    order: list[str] = []
    first_in = threading.Event()
    release = threading.Event()

    def big() -> None:
        with budget.reserve(80):
            first_in.set()
            release.wait(2)
            order.append("big done")

    def second() -> None:
        first_in.wait(2)
        with budget.reserve(50):  # 80 + 50 > 100: waits for the first
            order.append("second in")

    threads = [threading.Thread(target=big), threading.Thread(target=second)]
    for th in threads:
        th.start()
    time.sleep(0.2)
    assert order == []  # the second is still waiting
    release.set()
    for th in threads:
        th.join(2)
    assert order == ["big done", "second in"]
    with budget.reserve(10**12):  # bigger than the budget: alone, not refused
        assert budget.used == 100
    assert budget.used == 0
