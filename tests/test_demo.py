"""The demo folder: deterministic, exact masks, honest statistics, a fair test."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from engine.demo import make_demo_folder, make_demo_image
from engine.imageio import read_mask, read_rgb, scan_images


def folder_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_different_seed_differs(tmp_path: Path) -> None:
    make_demo_folder(tmp_path / "a", count=4, size=32, seed=3)
    make_demo_folder(tmp_path / "b", count=4, size=32, seed=3)
    make_demo_folder(tmp_path / "c", count=4, size=32, seed=4)
    a, b, c = (folder_bytes(tmp_path / x) for x in "abc")
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a if k.endswith(".png"))


def test_masks_exact_and_stats_consistent(tiny_demo_folder: Path) -> None:
    stats = json.loads((tiny_demo_folder / "demo.json").read_text())
    photos = scan_images(tiny_demo_folder)
    masks = scan_images(tiny_demo_folder / "masks")
    assert len(photos) == len(masks) == stats["count"] == 12
    assert [p.stem for p in photos] == [m.stem for m in masks]
    coverages = []
    for p, m in zip(photos, masks, strict=True):
        rgb, mask = read_rgb(p), read_mask(m)
        assert rgb.shape == (64, 64, 3) and mask.shape == (64, 64)
        assert set(np.unique(mask)) <= {0, 255}
        coverages.append(float((mask == 255).mean()))
    assert np.allclose(coverages, stats["coverage"], atol=1e-5)
    assert abs(np.mean(coverages) - stats["mean_coverage"]) < 1e-5
    # Objects are neither specks nor the whole frame.
    assert 0.02 < min(coverages) and max(coverages) < 0.7


def test_mask_matches_the_drawn_object() -> None:
    # Pixels inside the mask differ from the background drawn with no object: the mask is where
    # the object is, not just a plausible shape.
    rgb, mask, _ = make_demo_image(seed=1, index=0, size=64)
    inner = cv2.erode(mask, np.ones((3, 3), np.uint8)) == 255
    outer = cv2.dilate(mask, np.ones((9, 9), np.uint8)) == 0
    assert inner.sum() > 20 and outer.sum() > 20
    # Edge strength peaks on the mask boundary rather than far from it.
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    grad = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    ring = (cv2.dilate(mask, np.ones((3, 3), np.uint8)) != cv2.erode(mask, np.ones((3, 3), np.uint8)))
    assert grad[ring].mean() > 2 * grad[outer].mean()


def test_colour_alone_does_not_separate_object_from_background(tmp_path: Path) -> None:
    # Mean object colour and mean background colour come from the same distribution: over many
    # images their per-channel averages are close (a fair test for unsupervised segmentation).
    make_demo_folder(tmp_path, count=60, size=32, seed=11)
    fg, bg = [], []
    for p in scan_images(tmp_path):
        rgb = read_rgb(p).reshape(-1, 3).astype(np.float32)
        m = read_mask(tmp_path / "masks" / p.name).reshape(-1) == 255
        fg.append(rgb[m].mean(0))
        bg.append(rgb[~m].mean(0))
    diff = np.abs(np.mean(fg, 0) - np.mean(bg, 0))
    assert diff.max() < 25, diff


def test_cli_demo_data(tmp_path: Path) -> None:
    from engine.cli.main import main

    out = tmp_path / "démo folder"
    assert main(["demo-data", str(out), "--count", "3", "--size", "32", "--seed", "5"]) == 0
    assert len(scan_images(out)) == 3 and len(scan_images(out / "masks")) == 3
    # Rewriting an existing demo folder is allowed; a user's non-empty folder is refused.
    assert main(["demo-data", str(out), "--count", "3", "--size", "32"]) == 0
    user = tmp_path / "photos"
    user.mkdir()
    (user / "keep.jpg").write_bytes(b"x")
    assert main(["demo-data", str(user)]) == 2
    assert (user / "keep.jpg").read_bytes() == b"x"
