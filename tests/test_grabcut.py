"""GrabCut baseline: sensible masks, graceful degenerate cases, resumable folder runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.baselines.grabcut import centred_rect, grabcut_folder, grabcut_mask
from engine.demo import make_demo_image
from engine.imageio import read_mask, scan_images
from engine.metrics import image_scores


def test_finds_a_plain_object() -> None:
    # A flat red disc on a flat blue-grey background: GrabCut must find it almost exactly.
    yy, xx = np.mgrid[0:64, 0:64]
    disc = (yy - 32) ** 2 + (xx - 30) ** 2 < 15**2
    rgb = np.where(disc[..., None], [200, 40, 30], [90, 100, 120]).astype(np.uint8)
    mask = grabcut_mask(rgb)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
    assert image_scores(mask, disc.astype(np.uint8) * 255).iou > 0.95


def test_deterministic_whatever_ran_before() -> None:
    rgb, _, _ = make_demo_image(seed=2, index=3, size=64)
    first = grabcut_mask(rgb)
    other, _, _ = make_demo_image(seed=2, index=4, size=64)
    grabcut_mask(other)
    assert np.array_equal(grabcut_mask(rgb), first)


def test_degenerate_inputs_return_initialisation() -> None:
    tiny = np.full((3, 3, 3), 128, np.uint8)
    assert grabcut_mask(tiny).shape == (3, 3)
    flat = np.full((32, 32, 3), 77, np.uint8)  # no colour difference at all
    m = grabcut_mask(flat)
    assert m.shape == (32, 32)
    # Zero margin: no background samples, the rectangle itself comes back.
    assert (grabcut_mask(flat, margin=0.0) == 255).all()
    assert centred_rect(100, 50, 0.1) == (5, 10, 40, 80)


def test_init_mask_mode() -> None:
    rgb, gt, _ = make_demo_image(seed=5, index=1, size=64)
    # A rough prior: the true mask dilated to a blob, as a float probability.
    import cv2

    prior = cv2.dilate(gt, np.ones((7, 7), np.uint8)).astype(np.float32) / 255.0 * 0.8
    refined = grabcut_mask(rgb, init_mask=prior)
    assert image_scores(refined, gt).iou > image_scores((prior * 255).astype(np.uint8), gt).iou - 0.05
    # uint8 priors of another size are resized; all-object or all-background priors come back.
    assert grabcut_mask(rgb, init_mask=np.full((16, 16), 255, np.uint8)).min() == 255
    assert grabcut_mask(rgb, init_mask=np.zeros((64, 64), np.float32)).max() == 0


def test_folder_run_resumes_and_skips_bad(tiny_demo_folder: Path, tmp_path: Path) -> None:
    (tiny_demo_folder / "broken.jpg").write_bytes(b"GIF89a")
    out = tmp_path / "masks out"
    r = grabcut_folder(tiny_demo_folder, out, workers=2)
    assert r.written == 12 and r.skipped_existing == 0
    assert [Path(b.path).name for b in r.bad] == ["broken.jpg"]
    assert len(scan_images(out)) == 12
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp leftovers
    ious = [
        image_scores(read_mask(out / p.name), read_mask(tiny_demo_folder / "masks" / p.name)).iou
        for p in scan_images(out)
    ]
    assert np.mean(ious) > 0.4  # far above an empty or random mask on the demo
    (out / "demo_00003.png").unlink()
    r2 = grabcut_folder(tiny_demo_folder, out, workers=1)
    assert r2.written == 1 and r2.skipped_existing == 11
