"""Metrics against hand-computed answers."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.metrics import evaluate_folders, image_scores


def square(h: int, w: int, top: int, left: int, side: int, value: int = 255) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[top : top + side, left : left + side] = value
    return m


def save(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(path.suffix, arr)
    assert ok
    path.write_bytes(buf.tobytes())


def test_half_overlapping_squares() -> None:
    # GT: 10x10 square at (0, 0); prediction: the same square shifted 5 px right.
    # Intersection 50, union 150 -> IoU 1/3. Image 20x20 = 400 px: wrong pixels 100 -> acc 0.75.
    # Background: GT bg 300, pred bg 300, both bg = 400 - 150 = 250, union 350 -> 250/350.
    gt = square(20, 20, 0, 0, 10)
    pred = square(20, 20, 0, 5, 10)
    s = image_scores(pred, gt)
    assert s.iou == pytest.approx(1 / 3)
    assert s.accuracy == pytest.approx(0.75)
    assert s.bg_iou == pytest.approx(250 / 350)
    assert s.miou == pytest.approx((1 / 3 + 250 / 350) / 2)
    # Precision = recall = 0.5 at the 0.5 threshold -> F = 0.5 for any beta.
    assert s.f_curve[128] == pytest.approx(0.5)


def test_perfect_and_inverted() -> None:
    gt = square(16, 16, 4, 4, 8)
    assert image_scores(gt, gt).iou == 1.0
    assert image_scores(gt, gt).f_curve.max() == pytest.approx(1.0)
    inv = image_scores(255 - gt, gt)
    assert inv.iou == 0.0 and inv.accuracy == 0.0 and inv.miou == 0.0


def test_threshold_is_128() -> None:
    gt = np.full((4, 4), 255, np.uint8)
    assert image_scores(np.full((4, 4), 128, np.uint8), gt).iou == 1.0
    assert image_scores(np.full((4, 4), 127, np.uint8), gt).iou == 0.0
    # GT is binarised at 128 too.
    assert image_scores(np.full((4, 4), 255, np.uint8), np.full((4, 4), 127, np.uint8)).iou == 0.0


def test_empty_gt_and_empty_prediction_is_perfect() -> None:
    empty = np.zeros((8, 8), np.uint8)
    s = image_scores(empty, empty)
    assert (s.iou, s.bg_iou, s.accuracy) == (1.0, 1.0, 1.0)
    assert s.f_curve[128] == 1.0
    # A non-empty prediction on an empty GT scores IoU 0.
    assert image_scores(square(8, 8, 0, 0, 2), empty).iou == 0.0


def test_ignore_pixels_are_left_out() -> None:
    gt = square(20, 20, 0, 0, 10)
    pred = square(20, 20, 0, 5, 10)
    # Ignore columns 10..14, where the prediction is wrong (false positives): they no longer count.
    ignore = np.zeros((20, 20), np.uint8)
    ignore[:, 10:15] = 255
    s = image_scores(pred, gt, ignore)
    # tp 50, fp 0, fn 50 -> IoU 0.5. Valid pixels 300, wrong 50 -> acc 250/300.
    assert s.iou == pytest.approx(0.5)
    assert s.accuracy == pytest.approx(250 / 300)
    # Ignoring everything leaves nothing to be wrong about.
    assert image_scores(pred, gt, np.full((20, 20), 255, np.uint8)).accuracy == 1.0


def test_prediction_resized_to_gt() -> None:
    gt = square(40, 40, 0, 0, 20)  # top-left quarter
    pred_small = square(10, 10, 0, 0, 5)  # same quarter at a quarter of the resolution
    s = image_scores(pred_small, gt)
    assert s.iou > 0.9
    # Soft predictions stay soft when upsampled (bilinear), so the F curve has intermediate steps.
    soft = cv2.GaussianBlur(pred_small, (3, 3), 0)
    curve = image_scores(soft, gt).f_curve
    assert len(np.unique(np.round(curve, 6))) > 3


def test_maxf_picks_best_threshold() -> None:
    gt = square(10, 10, 0, 0, 5)
    pred = (gt // 255 * 60).astype(np.uint8)  # object predicted at 60/255 only
    s = image_scores(pred, gt)
    assert s.iou == 0.0  # below 0.5
    assert s.f_curve[60] == pytest.approx(1.0)
    assert s.f_curve[61] == 0.0


def test_evaluate_folders(tmp_path: Path) -> None:
    gt_dir, pred_dir, ign_dir = tmp_path / "gt", tmp_path / "pred", tmp_path / "ignore"
    save(gt_dir / "a.png", square(20, 20, 0, 0, 10))
    save(gt_dir / "b.png", square(20, 20, 5, 5, 10))
    save(gt_dir / "c.png", square(20, 20, 5, 5, 10))
    save(pred_dir / "a.png", square(20, 20, 0, 5, 10))  # IoU 1/3
    save(pred_dir / "b.jpg", square(20, 20, 5, 5, 10))  # near-perfect after JPEG
    # c missing -> empty mask -> IoU 0
    (pred_dir / "junk.png").write_bytes(b"not an image")  # no GT: unmatched, ignored
    ignore = np.zeros((20, 20), np.uint8)
    ignore[:, 10:15] = 255
    save(ign_dir / "a.png", ignore)
    r = evaluate_folders(pred_dir, gt_dir)
    assert r["count"] == 3
    assert r["missing"] == ["c"] and r["missing_count"] == 1
    assert r["unmatched_predictions"] == 1
    assert r["iou"] == pytest.approx((1 / 3 + 1.0 + 0.0) / 3, abs=0.01)
    r2 = evaluate_folders(pred_dir, gt_dir, ign_dir)
    assert r2["per_image"][0]["iou"] == pytest.approx(0.5)
    assert 0.0 <= r2["max_fbeta_threshold"] <= 1.0
    json.dumps(r2)  # the CLI prints it


def test_unreadable_prediction_scored_empty(tmp_path: Path) -> None:
    save(tmp_path / "gt" / "a.png", square(8, 8, 0, 0, 4))
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / "a.png").write_bytes(b"")
    r = evaluate_folders(tmp_path / "pred", tmp_path / "gt")
    assert r["iou"] == 0.0
    assert r["unreadable_predictions"][0]["reason"].startswith("empty file")


def test_binary_masks_report_the_threshold_nearest_half(tmp_path: Path) -> None:
    """0/255 masks score the same F at every threshold 1..255: the report must not say 1/255."""
    save(tmp_path / "gt" / "a.png", square(20, 20, 0, 0, 10))
    save(tmp_path / "pred" / "a.png", square(20, 20, 2, 0, 10))
    r = evaluate_folders(tmp_path / "pred", tmp_path / "gt")
    assert r["max_fbeta_threshold"] == pytest.approx(128 / 255)
    assert r["max_fbeta"] == pytest.approx(float(image_scores(
        cv2.imread(str(tmp_path / "pred" / "a.png"), 0),
        cv2.imread(str(tmp_path / "gt" / "a.png"), 0)).f_curve[1]))
