"""Segmentation quality the way the published methods report it, so Peel's numbers compare.

Per image, at threshold 0.5 (a prediction byte >= 128 is object; a ground-truth byte >= 128 is
object): pixel accuracy, foreground IoU, and mIoU (mean of foreground and background IoU); each is
averaged over images. maxFβ (β² = 0.3) uses every threshold k/255: per-image F at each threshold,
averaged over images, then the best threshold. Predictions are resized to the ground truth's size
(bilinear, so soft masks stay soft); pixels marked in an ignore mask (>= 128) are left out of every
metric.

Empty cases: an IoU whose union is empty (no object in either mask, or no background in either)
is 1.0 — the prediction is exactly right, and scoring it 0 would punish correct empty masks. Under
the same rule F is 1.0 when neither mask has object pixels, and accuracy is 1.0 when every pixel
is ignored.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engine.imageio import ImageReadError, read_mask, scan_images
from engine.text import one_line

log = logging.getLogger(__name__)

BETA2 = 0.3
THRESHOLD = 128  # 0.5 on 8-bit masks: value >= 128 is foreground
# Preferred prediction extension when several files share a stem (lossless first).
_PRED_PREFERENCE = (".png", ".bmp", ".tif", ".tiff", ".webp", ".jpg", ".jpeg")


@dataclass(frozen=True)
class ImageScores:
    accuracy: float
    iou: float
    bg_iou: float
    miou: float
    f_curve: np.ndarray  # (256,) F_beta at thresholds k/255, k = 0..255

    def as_dict(self) -> dict[str, float]:
        return {
            "accuracy": self.accuracy,
            "iou": self.iou,
            "bg_iou": self.bg_iou,
            "miou": self.miou,
            "fbeta": float(self.f_curve[THRESHOLD]),
        }


def _ratio(num: float, den: float, empty: float) -> float:
    return float(num) / float(den) if den > 0 else empty


def resize_to(pred_u8: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bring a prediction to the ground truth's (H, W); bilinear keeps soft masks soft."""
    if pred_u8.shape[:2] == tuple(shape):
        return pred_u8
    return cv2.resize(pred_u8, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def image_scores(
    pred_u8: np.ndarray, gt_u8: np.ndarray, ignore: np.ndarray | None = None
) -> ImageScores:
    """Scores of one 8-bit prediction against one 8-bit ground truth (both (H, W) grey)."""
    if pred_u8.ndim != 2 or gt_u8.ndim != 2:
        raise ValueError("masks must be 2-D grey arrays")
    pred = resize_to(np.asarray(pred_u8, np.uint8), gt_u8.shape)
    gt = gt_u8 >= THRESHOLD
    valid = np.ones(gt.shape, bool)
    if ignore is not None:
        ign = ignore
        if ign.shape != gt.shape:
            ign = cv2.resize(ign, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_NEAREST)
        valid = ign < THRESHOLD

    # Histograms of prediction bytes over object / background pixels give every threshold at once.
    hist_fg = np.bincount(pred[valid & gt], minlength=256).astype(np.float64)
    hist_bg = np.bincount(pred[valid & ~gt], minlength=256).astype(np.float64)
    # tp[k] / fp[k]: object / background pixels with prediction >= k.
    tp = np.cumsum(hist_fg[::-1])[::-1]
    fp = np.cumsum(hist_bg[::-1])[::-1]
    n_fg, n_bg = tp[0], fp[0]

    t = THRESHOLD
    tp5, fp5 = tp[t], fp[t]
    fn5, tn5 = n_fg - tp5, n_bg - fp5
    accuracy = _ratio(tp5 + tn5, n_fg + n_bg, 1.0)
    iou = _ratio(tp5, tp5 + fp5 + fn5, 1.0)
    bg_iou = _ratio(tn5, tn5 + fn5 + fp5, 1.0)

    predicted = tp + fp
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
        recall = tp / n_fg if n_fg > 0 else np.zeros(256)
        den = BETA2 * precision + recall
        f_curve = np.where(den > 0, (1 + BETA2) * precision * recall / np.maximum(den, 1e-12), 0.0)
    if n_fg == 0:
        f_curve = np.where(predicted == 0, 1.0, 0.0)
    return ImageScores(accuracy, iou, bg_iou, (iou + bg_iou) / 2, f_curve.astype(np.float64))


def best_threshold(f_mean: np.ndarray) -> int:
    """The byte threshold of the best mean F; among tied ones, the nearest to 0.5. Binary masks
    (0/255, what ``peel segment`` writes) give one F for every threshold 1..255: the first of
    them, 1/255, read as "the masks are best cut at 0.004", which says nothing true."""
    tied = np.flatnonzero(f_mean >= f_mean.max() - 1e-12)
    return int(tied[np.argmin(np.abs(tied - THRESHOLD))])


def _by_stem(folder: Path) -> dict[str, Path]:
    rank = {ext: i for i, ext in enumerate(_PRED_PREFERENCE)}
    found: dict[str, Path] = {}
    for path in scan_images(folder):
        old = found.get(path.stem)
        if old is None or rank.get(path.suffix.lower(), 99) < rank.get(old.suffix.lower(), 99):
            found[path.stem] = path
    return found


def evaluate_folders(
    pred_dir: str | os.PathLike[str],
    gt_dir: str | os.PathLike[str],
    ignore_dir: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Score every ground-truth mask of ``gt_dir`` against the prediction with the same stem.

    A missing or unreadable prediction counts as an empty mask (a method that fails on an image
    must not look better by skipping it) and is listed. Unreadable ground truth is skipped and
    listed. Returns means, maxFβ with its threshold, and per-image scores. ``progress(done,
    total)`` is called after each ground-truth mask. Unreadable files are logged at debug level
    only: they are in the result, and the caller reports them once.
    """
    gts = _by_stem(Path(gt_dir))
    preds = _by_stem(Path(pred_dir))
    ignores = _by_stem(Path(ignore_dir)) if ignore_dir is not None else {}

    per_image: list[dict] = []
    f_sum = np.zeros(256, np.float64)
    missing: list[str] = []
    bad_pred: list[dict[str, str]] = []
    bad_gt: list[dict[str, str]] = []
    bad_ignore: list[dict[str, str]] = []
    for done, (stem, gt_path) in enumerate(sorted(gts.items()), start=1):
        if progress is not None:
            progress(done - 1, len(gts))
        try:
            gt = read_mask(gt_path)
        except ImageReadError as exc:
            log.debug("skipping ground truth %s: %s", exc.path, exc.reason)
            bad_gt.append({"path": exc.path, "reason": exc.reason})
            continue
        pred = np.zeros_like(gt)
        if stem not in preds:
            missing.append(stem)
        else:
            try:
                pred = read_mask(preds[stem])
            except ImageReadError as exc:
                log.debug("unreadable prediction %s (scored as empty): %s", exc.path, exc.reason)
                bad_pred.append({"path": exc.path, "reason": exc.reason})
        ignore = None
        if stem in ignores:
            try:
                ignore = read_mask(ignores[stem])
            except ImageReadError as exc:
                log.debug("unreadable ignore mask %s (not used): %s", exc.path, exc.reason)
                bad_ignore.append({"path": exc.path, "reason": exc.reason})
        s = image_scores(pred, gt, ignore)
        f_sum += s.f_curve
        per_image.append({"name": stem, **s.as_dict()})

    n = len(per_image)
    result: dict = {
        "count": n,
        "missing_count": len(missing),
        "missing": missing,
        "unreadable_predictions": bad_pred,
        "unreadable_ground_truth": bad_gt,
        "unreadable_ignore": bad_ignore,
        "unmatched_predictions": len(set(preds) - set(gts)),
        "per_image": per_image,
    }
    if n:
        f_mean = f_sum / n
        best = best_threshold(f_mean)
        for key in ("accuracy", "iou", "miou", "bg_iou"):
            result[key] = float(np.mean([p[key] for p in per_image]))
        result["max_fbeta"] = float(f_mean[best])
        result["max_fbeta_threshold"] = best / 255.0
    return result


def format_table(result: dict) -> str:
    """The human-readable summary printed by ``peel evaluate``."""
    lines = [f"images scored        {result['count']}"]
    if result["count"]:
        lines += [
            f"accuracy             {result['accuracy']:.4f}",
            f"IoU (foreground)     {result['iou']:.4f}",
            f"mIoU (fg+bg)/2       {result['miou']:.4f}",
            f"maxF(beta^2=0.3)     {result['max_fbeta']:.4f}"
            f"  at threshold {result['max_fbeta_threshold']:.3f}",
        ]
    miss = result["missing"]
    lines.append(f"missing predictions  {len(miss)} (scored as empty masks)")
    if miss:
        shown = ", ".join(miss[:10]) + (f", ... (+{len(miss) - 10})" if len(miss) > 10 else "")
        lines.append(f"  {shown}")
    for key, label in (
        ("unreadable_predictions", "unreadable predictions (scored as empty)"),
        ("unreadable_ground_truth", "unreadable ground truth (skipped)"),
        ("unreadable_ignore", "unreadable ignore masks (not used)"),
    ):
        for bad in result[key]:
            lines.append(one_line(f"{label}: {bad['path']}: {bad['reason']}"))
    return "\n".join(lines)
