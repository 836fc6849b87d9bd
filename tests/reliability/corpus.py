"""The bad-input corpus of issue #9, generated on the spot (nothing is downloaded).

``write_corpus(folder)`` fills one flat folder with every kind of file a real photo folder may hold
(broken, odd, huge, linked, oddly named) and returns a manifest: for each file, what each consumer
must do with it. ``None`` means "processed"; a string is a fragment of the reason it must report.
The consumers differ on purpose: training needs 16 px per side and may read a huge JPEG reduced;
mask export needs the photo at its true size (its mask must match the photo), so it refuses huge
images but accepts a 1x1 photo; thumbnails accept anything decodable.

Pillow is used only here, for the formats OpenCV cannot write (CMYK JPEG, palette PNG, EXIF
orientation); it is a dependency of torchvision, never of Peel. The two huge images are written
by hand (a flat JPEG whose entropy-coded data is all zero bytes, a 1-bit PNG), so making them
never allocates the 900 MB that decoding them fully would.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

HUGE_W, HUGE_H = 20_000, 15_000
NON_UTF8_NAME = b"bad\xffbyte name.jpg"  # valid on Linux, not decodable as UTF-8
NON_UTF8_BAD = b"empty \xfe.jpg"  # a bad file whose reason must be printed and logged too


@dataclass(frozen=True)
class Entry:
    name: str  # file name inside the corpus folder (str, surrogate-escaped when not UTF-8)
    case: str  # what it exercises
    load: str | None = None  # training cache (load_folder): None = decoded, else reason fragment
    segment: str | None = None  # mask export (read at true size, any side >= 1)
    thumb: str | None = None  # GUI thumbnails


@dataclass
class Corpus:
    root: Path
    entries: list[Entry]
    not_made: dict[str, str] = field(default_factory=dict)  # case -> why it is not in this corpus

    def names(self) -> set[str]:
        return {e.name for e in self.entries}

    def good(self, consumer: str) -> set[str]:
        return {e.name for e in self.entries if getattr(e, consumer) is None}

    def bad(self, consumer: str) -> dict[str, str]:
        return {e.name: getattr(e, consumer) for e in self.entries if getattr(e, consumer)}


def gradient_rgb(h: int = 40, w: int = 56, seed: int = 0) -> np.ndarray:
    """Structured content (gradients, a disc) whose orientation is unambiguous."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = (xx * 255 // max(1, w - 1)).astype(np.uint8)
    img[..., 1] = (yy * 255 // max(1, h - 1)).astype(np.uint8)
    img[..., 2] = int(rng.integers(20, 230))
    cv2.circle(img, (w // 3, h // 2), max(1, min(h, w) // 5), (255, 255, 255), -1)
    return img


def encode(rgb: np.ndarray, ext: str, params: list[int] | None = None) -> bytes:
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 and rgb.shape[2] == 3 else rgb
    ok, buf = cv2.imencode(ext, bgr, params or [])
    assert ok, ext
    return buf.tobytes()


def pil_bytes(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _segment(marker: int, payload: bytes) -> bytes:
    return b"\xff" + bytes([marker]) + struct.pack(">H", len(payload) + 2) + payload


def flat_jpeg(width: int, height: int) -> bytes:
    """A valid baseline grey JPEG of any size whose every pixel is 128, in ~width*height/256 bytes.

    Huffman tables with a single 1-bit code (DC difference 0, end-of-block) make each 8x8 block
    two zero bits, so the scan is a run of zero bytes; no pixel array is ever built.
    """
    dqt = _segment(0xDB, b"\x00" + bytes([1] * 64))
    sof = _segment(0xC0, b"\x08" + struct.pack(">HH", height, width) + b"\x01\x01\x11\x00")
    one_code = bytes([1] + [0] * 15) + b"\x00"
    dht = _segment(0xC4, b"\x00" + one_code + b"\x10" + one_code)
    sos = _segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
    blocks = -(-width // 8) * -(-height // 8)
    return b"\xff\xd8" + dqt + sof + dht + sos + bytes(-(-blocks * 2 // 8)) + b"\xff\xd9"


def flat_png_1bit(width: int, height: int) -> bytes:
    """A valid 1-bit black PNG of any size (rows of zero bits, deflated row by row)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    comp = zlib.compressobj(6)
    row = bytes(1 + -(-width // 8))
    data = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def animation_bytes(ext: str, frames: int = 3) -> bytes:
    """An animated GIF or WebP written by OpenCV 5's animation writer (Pillow as fallback)."""
    imgs = [gradient_rgb(36, 48, seed=k) for k in range(frames)]
    if hasattr(cv2, "Animation") and hasattr(cv2, "imencodeanimation"):
        anim = cv2.Animation()
        anim.frames = [cv2.cvtColor(i, cv2.COLOR_RGB2BGR) for i in imgs]
        anim.durations = [100] * frames
        ok, buf = cv2.imencodeanimation(ext, anim)
        if ok:
            return bytes(buf)
    pil = [Image.fromarray(i) for i in imgs]
    return pil_bytes(pil[0], ext.lstrip(".").upper(), save_all=True, append_images=pil[1:],
                     duration=100, loop=0)


def exif_jpeg(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return pil_bytes(Image.fromarray(gradient_rgb(40, 56, seed=orientation)), "JPEG", quality=92,
                     exif=exif.tobytes())


def permissions_enforced() -> bool:
    """Whether a chmod-000 file is unreadable to us: false for root, unless root runs without
    CAP_DAC_OVERRIDE (``capsh --drop=cap_dac_override,cap_dac_read_search``), so the
    permission cases can be tested on a machine where only root can run the tests."""
    import tempfile

    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return True
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe"
        probe.write_bytes(b"x")
        probe.chmod(0)
        try:
            probe.read_bytes()
        except PermissionError:
            return True
        finally:
            probe.chmod(0o600)
    return False


def write_corpus(folder: Path, huge: bool = True) -> Corpus:
    """Write the corpus into ``folder`` (created) and return its manifest.

    ``huge=False`` leaves out the two 20000 x 15000 files (a quick corpus for fast tests).
    """
    folder.mkdir(parents=True, exist_ok=True)
    entries: list[Entry] = []
    not_made: dict[str, str] = {}

    def put(name: str, data: bytes, case: str, load=None, segment=None, thumb=None) -> None:
        (folder / name).write_bytes(data)
        entries.append(Entry(name, case, load, segment, thumb))

    base = gradient_rgb()
    jpg = encode(base, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 92])
    png = encode(gradient_rgb(48, 48, seed=1), ".png")

    # Good photos in every layout OpenCV or a camera produces.
    put("baseline.jpg", jpg, "baseline JPEG")
    put("progressive.jpg", encode(base, ".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]), "progressive JPEG")
    put("cmyk.jpg", pil_bytes(Image.fromarray(base).convert("CMYK"), "JPEG", quality=92), "CMYK JPEG")
    put("grey.jpg", encode(cv2.cvtColor(base, cv2.COLOR_RGB2GRAY), ".jpg"), "grey JPEG")
    put("rgb8.png", png, "8-bit RGB PNG")
    deep = (gradient_rgb(40, 40, seed=2).astype(np.uint16) * 257)[..., ::-1].copy()
    put("deep16.png", encode(deep, ".png"), "16-bit PNG")
    put("palette.png", pil_bytes(Image.fromarray(base).convert("P"), "PNG"), "palette PNG")
    rgba = np.dstack([base, np.full(base.shape[:2], 120, np.uint8)])
    put("rgba.png", encode(cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA), ".png"), "RGBA PNG")
    put("greyscale.png", encode(cv2.cvtColor(base, cv2.COLOR_RGB2GRAY), ".png"), "grey PNG")
    put("still.webp", encode(base, ".webp"), "WebP")
    put("bitmap.bmp", encode(base, ".bmp"), "BMP")
    put("scan.tif", encode(base, ".tif"), "TIFF")
    put("animated.gif", animation_bytes(".gif"), "animated GIF (first frame)")
    put("moving.webp", animation_bytes(".webp"), "animated WebP (first frame)")
    for k in range(1, 9):
        put(f"exif_{k}.jpg", exif_jpeg(k), f"EXIF orientation {k}")
    put("dot.png", encode(np.full((1, 1, 3), 90, np.uint8), ".png"), "1x1 image",
        load="too small")
    put("banner.png", encode(np.full((20, 500, 3), 90, np.uint8), ".png"), "500x20 banner",
        load="too elongated")  # training sees the centre square; the mask export takes it whole
    put("name with spaces.jpg", jpg, "name with spaces")
    put("фото über 写真.jpg", jpg, "non-ASCII name")
    put("-leading-dash.jpg", jpg, "name with a leading dash")
    put("--help.png", png, "name that looks like an option")
    raw = os.path.join(os.fsencode(folder), NON_UTF8_NAME)
    with open(raw, "wb") as fh:
        fh.write(jpg)
    entries.append(Entry(os.fsdecode(NON_UTF8_NAME), "name that is not valid UTF-8"))

    # Broken or misnamed files: every consumer must name them with a reason.
    every = dict.fromkeys(("load", "segment", "thumb"))

    def put_bad(name: str, data: bytes, case: str, reason: str) -> None:
        put(name, data, case, **{k: reason for k in every})

    put_bad("zero.jpg", b"", "0-byte file", "empty file")
    with open(os.path.join(os.fsencode(folder), NON_UTF8_BAD), "wb"):
        pass
    entries.append(Entry(os.fsdecode(NON_UTF8_BAD), "0-byte file, name not valid UTF-8",
                         *(["empty file"] * 3)))
    put_bad("cut.jpg", jpg[: len(jpg) // 2], "truncated JPEG", "truncated")
    put_bad("cut_progressive.jpg", encode(base, ".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[:300],
            "truncated progressive JPEG", "truncated")
    put_bad("half.png", png[: len(png) // 2], "truncated PNG", "not a readable image")
    put_bad("notes.jpg", b"shopping list: carrots, hay\n", "text named .jpg", "not a readable image")
    put_bad("page.png", b"<!doctype html><html><body>404 Not Found</body></html>\n",
            "HTML named .png", "not a readable image")

    # Huge images: decoding either fully would take 900 MB (RGB) or more.
    if huge:
        put("huge.jpg", flat_jpeg(HUGE_W, HUGE_H), f"{HUGE_W}x{HUGE_H} JPEG (read reduced)",
            segment="too large")
        put_bad("huge_png.png", flat_png_1bit(HUGE_W, HUGE_H), f"{HUGE_W}x{HUGE_H} PNG (refused)",
                "too large")
    else:
        not_made["huge"] = "quick corpus (huge=False)"

    # Links.
    os.symlink("baseline.jpg", folder / "link_to_good.jpg")
    entries.append(Entry("link_to_good.jpg", "symlink to a good photo"))
    os.symlink("no_such_photo.jpg", folder / "broken_link.jpg")
    entries.append(Entry("broken_link.jpg", "broken symlink", *(["broken symbolic link"] * 3)))
    os.symlink("self_loop.jpg", folder / "self_loop.jpg")
    entries.append(Entry("self_loop.jpg", "symlink pointing at itself", *(["link loop"] * 3)))

    # Hostile entries (issue #15): opening a FIFO blocks for ever, /dev/zero never ends, a bomb
    # announces a size in a few bytes, PPM content is decoded by OpenCV whatever its name says.
    os.mkfifo(folder / "pipe.jpg")
    entries.append(Entry("pipe.jpg", "FIFO named .jpg", *(["FIFO"] * 3)))
    os.symlink("pipe.jpg", folder / "link_to_pipe.png")
    entries.append(Entry("link_to_pipe.png", "symlink to a FIFO", *(["FIFO"] * 3)))
    os.symlink("/dev/zero", folder / "link_to_dev_zero.jpg")
    entries.append(Entry("link_to_dev_zero.jpg", "symlink to /dev/zero",
                         *(["character device"] * 3)))
    put_bad("tiff_bomb.tif", hostile_tiff(20_000, 20_000), "20000x20000 TIFF header (bomb)",
            "too large")
    put_bad("ppm_inside.jpg", b"P6\n60000 60000\n255\n" + bytes(64), "PPM bomb named .jpg",
            "unknown format")

    # Unreadable permissions: root reads anything, so the case only exists for other users.
    if not permissions_enforced():
        not_made["unreadable permissions"] = "running as root: chmod 000 does not stop reading"
    else:
        put_bad("locked.jpg", jpg, "unreadable permissions (chmod 000)", "Permission denied")
        os.chmod(folder / "locked.jpg", 0)

    # Things that are not photos and must be neither read nor reported.
    (folder / "readme.txt").write_text("not an image name: ignored by the scan\n")
    (folder / ".hidden.jpg").write_bytes(b"")
    (folder / "sub folder").mkdir()
    (folder / "sub folder" / "inside.jpg").write_bytes(jpg)  # only seen by recursive scans
    return Corpus(folder, entries, not_made)


def hostile_tiff(width: int, height: int) -> bytes:
    """A classic little-endian TIFF header announcing ``width`` x ``height`` with no pixel data
    (tests/reliability/hostile.py writes real bombs and the other layouts)."""
    from hostile import tiff_bytes

    return tiff_bytes(width, height, strip=b"x\x9c\x03\x00\x00\x00\x00\x01")


def copy_corpus(src: Path, dest: Path, skip: tuple[bytes, ...] = ()) -> None:
    """Copy a corpus folder: links as links, FIFOs made anew (a copy would open them)."""
    import shutil
    import stat

    fifos: list[bytes] = []

    def ignore(folder: bytes, names: list[bytes]) -> list[bytes]:
        out = [n for n in names if n in skip]
        for n in names:
            if stat.S_ISFIFO(os.lstat(os.path.join(folder, n)).st_mode):
                fifos.append(os.path.relpath(os.path.join(folder, n), os.fsencode(src)))
                out.append(n)
        return out

    shutil.copytree(os.fsencode(src), os.fsencode(dest), symlinks=True, ignore=ignore)
    for rel in fifos:
        os.mkfifo(os.path.join(os.fsencode(dest), rel))


def write_recursive_tree(folder: Path) -> dict[str, str | None]:
    """A tree with a folder link loop, a link to a sibling folder and (when not root) a folder
    that cannot be listed. Returns relative path -> None (photo to find) or reason fragment."""
    jpg = encode(gradient_rgb(), ".jpg")
    (folder / "a" / "b").mkdir(parents=True)
    (folder / "a" / "one.jpg").write_bytes(jpg)
    (folder / "a" / "b" / "two.jpg").write_bytes(jpg)
    (folder / "c").mkdir()
    (folder / "c" / "three.png").write_bytes(encode(gradient_rgb(), ".png"))
    os.symlink("..", folder / "a" / "b" / "up")  # a/b/up -> a: a loop
    os.symlink(folder.resolve(), folder / "c" / "root")  # c/root -> the top: a loop
    os.symlink("no_such_folder", folder / "c" / "gone")  # a broken link with no image name
    expected: dict[str, str | None] = {
        "a/one.jpg": None, "a/b/two.jpg": None, "c/three.png": None,
        "a/b/up": "already scanned", "c/root": "already scanned",
    }
    if permissions_enforced():
        (folder / "closed").mkdir()
        (folder / "closed" / "hidden_away.jpg").write_bytes(jpg)
        os.chmod(folder / "closed", 0)
        expected["closed"] = "Permission denied"
    return expected


def write_many_tiny(folder: Path, count: int) -> None:
    """``count`` tiny valid PNGs (16 x 16, ~100 bytes each) with distinct names."""
    folder.mkdir(parents=True, exist_ok=True)
    data = encode(gradient_rgb(16, 16), ".png")
    for i in range(count):
        with open(folder / f"tiny_{i:06d}.png", "wb") as fh:
            fh.write(data)


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder`` (links not followed) -> a digest of what it is or holds.

    Compared before and after a run: nothing may be modified, removed or renamed.
    """
    import hashlib
    import stat

    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(os.fsencode(folder)):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.fsdecode(os.path.relpath(path, os.fsencode(folder)))
            st = os.lstat(path)
            if os.path.islink(path):
                out[rel] = "link:" + os.fsdecode(os.readlink(path))
            elif os.path.isdir(path):
                out[rel] = f"dir:{st.st_mode & 0o777:o}"
            elif not stat.S_ISREG(st.st_mode):  # a FIFO: opening it would block
                out[rel] = f"special:{stat.S_IFMT(st.st_mode):o}:{st.st_mode & 0o777:o}"
            else:
                try:
                    with open(path, "rb") as fh:
                        digest = hashlib.sha256(fh.read()).hexdigest()
                except OSError:
                    digest = "unreadable"
                out[rel] = f"file:{st.st_mode & 0o777:o}:{st.st_size}:{digest}"
    return out
