"""Self-training labels: the current segmenter's masks of the user's photos, snapped by GrabCut.

The segmenter runs at the training resolution, so its masks have the right shape but soft, wandering
outlines; GrabCut started from such a mask fits colour models to its object and its background and
moves the outline to the photo's edges (demo IoU 0.80 -> 0.97, horses 0.66 -> 0.73: bench/RESULTS.md).
Training the next segmenter on those refined masks passes the gain on to the segmenter itself, so
its unrefined masks (what the ONNX export gives) improve too, with no label anywhere.

A refined mask is used only where the two still agree (IoU >= ``MIN_IOU``): GrabCut sometimes runs
off into a background of the object's colour, and the segmenter's mask is the better guess there.

The targets are per pixel, not the snapped mask as it is (``self_training_target``): where the
teacher has decided (``|p - 0.5| >= CONFIDENT``) and GrabCut agrees, that label; in the teacher's
undecided band (the outline) GrabCut's label, which is what the snapping is good for; where a
decided teacher and GrabCut disagree, no label at all (``IGNORE``, weight 0 in the fit). Taking the
snapped mask whole pulled each round towards GrabCut's own mistakes: on held-out horses the prior
scored 0.688, the stages trained on snapped masks after it 0.663 and 0.660, GrabCut 0.658 (#18).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator
from concurrent.futures import FIRST_COMPLETED, Future, wait

import numpy as np
import torch
from torch import nn

from engine.control import RunControl
from engine.data import ImageCache, square_resize
from engine.events import Event, PhaseChanged, Progress, WarningEvent
from engine.segmenter.grabcut_cache import refine_centre
from engine.segmenter.infer import predict_soft
from engine.segmenter.pairs import filter_pairs
from engine.worker_pool import abandon, background_pool

log = logging.getLogger(__name__)

MIN_IOU = 0.5
# A teacher probability this far from 0.5 is a decision; nearer, the pixel is in its undecided band.
CONFIDENT = 0.3
# Target value of a pixel with no label: 0.5 after /255, so ``fit.label_weights`` gives it ~0.
IGNORE = 128
INLINE_MAX = 16  # below this many photos, starting worker processes costs more than it saves


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def self_training_target(soft: np.ndarray, snapped: np.ndarray | None) -> np.ndarray:
    """uint8 target (0, 255 or ``IGNORE``) from the teacher's probability (uint8, p × 255) and the
    GrabCut-snapped mask (uint8 0/255, same shape; None when GrabCut failed or drifted).

    Decided teacher pixels keep their label only where GrabCut agrees (or there is no GrabCut);
    undecided ones take GrabCut's label, else none. Why: see the module docstring.
    """
    p = soft.astype(np.float32) / 255.0
    sure_fg = p >= 0.5 + CONFIDENT
    sure_bg = p <= 0.5 - CONFIDENT
    out = np.full(soft.shape, IGNORE, np.uint8)
    if snapped is None:
        out[sure_fg] = 255
        out[sure_bg] = 0
        return out
    grab = snapped >= 128
    undecided = ~(sure_fg | sure_bg)
    out[undecided] = np.where(grab[undecided], 255, 0)
    out[sure_fg & grab] = 255
    out[sure_bg & ~grab] = 0
    return out


def _results(tasks: list[tuple[str, np.ndarray]]) -> Generator[tuple[int, np.ndarray | None, str | None], None, None]:
    """(task index, mask, error) in completion order; worker processes when there are many."""
    if len(tasks) <= INLINE_MAX:
        for i, task in enumerate(tasks):
            _, mask, error = refine_centre(task)
            yield i, mask, error
        return
    pool = background_pool()
    pending: dict[Future, int] = {}
    try:
        pending = {pool.submit(refine_centre, t): i for i, t in enumerate(tasks)}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                i = pending.pop(fut)
                _, mask, error = fut.result()
                yield i, mask, error
    finally:
        abandon(pool, pending)


def refined_labels(
    cache: ImageCache,
    teacher: nn.Module,
    size: int,
    device: torch.device,
    control: RunControl,
    phase: str,
    step0: int,
    deadline_s: float | None = None,
) -> Generator[Event, None, tuple[np.ndarray, np.ndarray] | None]:
    """(images, targets) as uint8 (N, S, S, 3) / (N, S, S) at the cache's side, or None if none.

    Targets are 0 / 255 / ``IGNORE`` per pixel (``self_training_target``). Photos whose refinement
    failed or drifted from the teacher get the teacher's decided pixels only; photos whose mask
    (snapped, else the teacher's thresholded one) looks failed (empty, full, specks) are dropped.
    After ``deadline_s`` seconds the refinement stops and the photos not reached are labelled by
    the teacher alone too: the snapping is a gain, never worth overrunning the run's budget for.
    """
    side = cache.images.shape[1]
    n = len(cache)
    if n == 0:
        return None
    t0 = time.perf_counter()
    yield PhaseChanged(step0, phase, f"snapping the segmenter's masks of {n} photos to their edges")
    probs = predict_soft(teacher, list(cache.images), size, device, batch=32)
    soft = [(np.clip(p, 0, 1) * 255 + 0.5).astype(np.uint8) for p in probs]
    masks = np.stack([np.where(s >= 128, 255, 0).astype(np.uint8) for s in soft])
    snapped: list[np.ndarray | None] = [None] * n
    tasks = [(str(path), s) for path, s in zip(cache.paths, soft, strict=True)]
    refined = kept = 0
    skipped: list[str] = []
    last = 0.0
    results = _results(tasks)
    try:
        for done, (i, mask, error) in enumerate(results, start=1):
            if mask is not None:
                mask = np.where(square_resize(mask, side) >= 128, 255, 0).astype(np.uint8)
                refined += 1
                if _iou(mask > 0, masks[i] > 0) >= MIN_IOU:
                    snapped[i] = mask
                    kept += 1
            elif error:
                log.info("refining %s skipped: %s", cache.paths[i], error)
                skipped.append(f"{cache.paths[i]}: {error}")
            elapsed = time.perf_counter() - t0
            if elapsed - last >= 1.0 or done == n:
                last = elapsed
                rate = done / elapsed if elapsed > 0 else 0.0
                yield Progress(step0, phase, rate, elapsed, (n - done) / rate if rate else None, done / n,
                               unit="photos", done=done, total=n)
            if control.paused:
                control.wait_if_paused()
            if control.stop_requested:
                return None
            if deadline_s is not None and elapsed > deadline_s and done < n:
                log.info("%s: refinement stopped at its deadline after %d of %d photos",
                         phase, done, n)
                break
    finally:
        results.close()
    if skipped:  # e.g. the photo folder was moved or deleted during training
        yield WarningEvent(step=step0, message=f"{phase}: label refinement skipped for "
                           f"{len(skipped)} of {n} photos (first: {skipped[0]}); their "
                           "unrefined labels are used")
    for i, mask in enumerate(snapped):
        if mask is not None:
            masks[i] = mask
    keep = filter_pairs(torch.empty(0), torch.from_numpy(masks).float().div_(255.0).unsqueeze(1)).numpy()
    targets = np.stack([self_training_target(s, m) for s, m in zip(soft, snapped, strict=True)])
    log.info("%s: %d of %d photos refined, %d refinements kept, %d labels usable, "
             "%.1f%% of pixels unlabelled, %.1f s", phase, refined, n, kept, int(keep.sum()),
             100.0 * float(np.mean(targets[keep] == IGNORE)) if keep.any() else 0.0,
             time.perf_counter() - t0)
    if not keep.any():
        return None
    return cache.images[keep], targets[keep]
