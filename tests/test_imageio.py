"""Reading messy photo folders: every odd file either decodes correctly or fails with a reason."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from engine.imageio import ImageReadError, decode_rgb, read_mask, read_rgb, scan_images


def gradient_rgb(h: int = 24, w: int = 32) -> np.ndarray:
    """An image whose orientation is unambiguous: red rises left→right, green top→bottom."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = (xx * 255 // (w - 1)).astype(np.uint8)
    img[..., 1] = (yy * 255 // (h - 1)).astype(np.uint8)
    img[..., 2] = 60
    return img


def jpeg_bytes(rgb: np.ndarray, **save_kwargs) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=95, **save_kwargs)
    return buf.getvalue()


def test_zero_byte_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty file"):
        read_rgb(p)


def test_truncated_jpeg(tmp_path: Path) -> None:
    data = jpeg_bytes(gradient_rgb(64, 64))
    p = tmp_path / "cut.jpg"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="truncated"):
        read_rgb(p)


def test_text_file_named_jpg(tmp_path: Path) -> None:
    p = tmp_path / "notes.jpg"
    p.write_text("this is not a photo\n")
    with pytest.raises(ImageReadError) as info:
        read_rgb(p)
    assert info.value.path == str(p)
    assert "not a readable image" in info.value.reason


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="cannot open"):
        read_rgb(tmp_path / "nope.png")


def test_sixteen_bit_png_scaled_not_clipped(tmp_path: Path) -> None:
    img16 = np.zeros((8, 8, 3), np.uint16)
    img16[..., 0] = 65535  # full red (BGR order for cv2: index 2 is red)
    img16[..., 1] = 32768
    p = tmp_path / "deep.png"
    cv2.imwrite(str(p), img16[..., ::-1].copy())
    rgb = read_rgb(p)
    assert rgb.dtype == np.uint8 and rgb.shape == (8, 8, 3)
    assert tuple(rgb[0, 0]) == (255, 127, 0)


def test_rgba_png_drops_alpha(tmp_path: Path) -> None:
    rgba = np.zeros((6, 6, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 200, 100, 50, 128
    p = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(p)
    rgb = read_rgb(p)
    assert rgb.shape == (6, 6, 3)
    assert tuple(rgb[2, 2]) == (200, 100, 50)


def test_cmyk_jpeg(tmp_path: Path) -> None:
    p = tmp_path / "print.jpg"
    Image.new("CMYK", (16, 12), (0, 255, 255, 0)).save(p, "JPEG", quality=95)  # pure red ink
    rgb = read_rgb(p)
    assert rgb.shape == (12, 16, 3)
    r, g, b = (int(v) for v in rgb[6, 8])
    assert r > 200 and g < 60 and b < 60


@pytest.mark.parametrize("orientation, rotate", [(6, -90), (8, 90), (3, 180)])
def test_exif_orientation_applied(tmp_path: Path, orientation: int, rotate: int) -> None:
    stored = gradient_rgb(24, 32)  # landscape as stored
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = tmp_path / f"rot{orientation}.jpg"
    p.write_bytes(jpeg_bytes(stored, exif=exif.tobytes()))
    # What a viewer shows: Pillow's exif_transpose of the stored pixels.
    with Image.open(p) as im:
        shown = np.asarray(im.rotate(rotate, expand=True).convert("RGB"))
    rgb = read_rgb(p)
    assert rgb.shape == shown.shape
    if orientation != 3:
        assert rgb.shape == (32, 24, 3)  # portrait after rotation
    assert np.abs(rgb.astype(int) - shown.astype(int)).mean() < 3


def test_one_pixel_image(tmp_path: Path) -> None:
    p = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (10, 20, 30)).save(p)
    assert read_rgb(p, min_side=1).shape == (1, 1, 3)
    with pytest.raises(ImageReadError, match="too small"):
        read_rgb(p, min_side=16)


def test_grey_image_becomes_rgb(tmp_path: Path) -> None:
    p = tmp_path / "grey.png"
    Image.new("L", (5, 4), 77).save(p)
    rgb = read_rgb(p)
    assert rgb.shape == (4, 5, 3)
    assert (rgb == 77).all()
    assert read_mask(p).shape == (4, 5)


def test_non_ascii_and_space_path(tmp_path: Path) -> None:
    folder = tmp_path / "фото über 写真"
    folder.mkdir()
    p = folder / "лошадь 1.jpg"
    p.write_bytes(jpeg_bytes(gradient_rgb()))
    assert scan_images(folder) == [p]
    assert read_rgb(p).shape == (24, 32, 3)


def test_decode_rgb_from_bytes_is_rgb_order() -> None:
    img = np.zeros((4, 4, 3), np.uint8)
    img[..., 0] = 255  # red
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    assert tuple(decode_rgb(buf.getvalue())[0, 0]) == (255, 0, 0)


def test_scan_skips_hidden_and_other_files(tmp_path: Path) -> None:
    for name in ("b.JPG", "a.png", ".a.png.tmp.png", "notes.txt", "c.webp"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.jpg").write_bytes(b"x")
    assert [p.name for p in scan_images(tmp_path)] == ["a.png", "b.JPG", "c.webp"]
    assert [p.name for p in scan_images(tmp_path, recursive=True)] == ["a.png", "b.JPG", "c.webp", "d.jpg"]
    with pytest.raises(FileNotFoundError):
        scan_images(tmp_path / "missing")
