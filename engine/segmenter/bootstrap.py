"""A label-free segmentation prior: GrabCut masks of the folder's own photos, distilled into a UNet.

GrabCut from a centred rectangle is a weak but honest guess of "the object in the middle". A UNet
trained on those guesses across the whole folder, with augmentation, learns what the guesses have
in common and smooths over each one's mistakes: on horses it beat GrabCut itself (see
bench/RESULTS.md). The GAN stage uses it, frozen, as S in ``L_bg = log(1 − S(B))``, which gives the
generator a reason to draw the object in the foreground layer.

Layout under ``RUN_DIR/bootstrap/``: ``masks/KEY.png`` (GrabCut at ``WORK_SIDE`` px, one per photo,
kept across resumes) and ``prior.pt`` (``save_segmenter`` format), written only when training ran
its full budget; a resumed run with a matching ``prior.pt`` reuses it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path

import numpy as np
import torch

from engine.control import RunControl
from engine.data import ImageCache, square_resize, to_tensor
from engine.events import Event, PhaseChanged, Progress, WarningEvent
from engine.nets.unet import UNet, UNetConfig
from engine.parallel import distributed
from engine.segmenter.fit import COARSE_SHARE, Sampler, fit_unet
from engine.segmenter.grabcut_cache import cache_key, compute_one, load_cached
from engine.segmenter.model import SegmenterLoadError, load_segmenter, save_segmenter
from engine.segmenter.pairs import filter_pairs
from engine.worker_pool import abandon, background_pool

log = logging.getLogger(__name__)

PHASE = "bootstrap"
METHOD = "bootstrap-grabcut"
PRIOR_WIDTH = 16
BATCH = 32
# GrabCut may use this share of the budget before training starts with the masks it has; the rest
# of the folder is GrabCut-ed on a later run (resume) or never: a few hundred masks suffice.
GRABCUT_SHARE = 0.5
MIN_MASKS = 64
# ... but never past HARD_SHARE times its share, with however many masks it has: the budget
# holds on a machine where GrabCut is slow (issue #16: 98 photos in 3 minutes).
HARD_SHARE = 1.6
# Up to this many photos are GrabCut-ed in this process: starting worker processes costs seconds.
INLINE_MAX = 16


def prior_config() -> UNetConfig:
    return UNetConfig(width=PRIOR_WIDTH)


Result = tuple[int, str, str, "str | None", int]  # cache index, photo, mask file, error, left


def _run_inline(todo: list[tuple[int, str, str]]) -> Generator[Result, None, None]:
    for k, (i, src, dst) in enumerate(todo):
        yield (i, src, dst, compute_one((src, dst))[1], len(todo) - k - 1)


def _run_pool(
    pool: ProcessPoolExecutor, todo: list[tuple[int, str, str]]
) -> Generator[Result, None, None]:
    pending: dict[Future, tuple[int, str, str]] = {
        pool.submit(compute_one, (src, dst)): (i, src, dst) for i, src, dst in todo
    }
    try:
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                i, src, dst = pending.pop(fut)
                yield (i, src, dst, fut.result()[1], len(pending))
    finally:  # cut short (deadline, stop): photos not yet started are not computed
        abandon(pool, pending)


def sample_order(count: int) -> list[int]:
    """The order in which a sample of the folder's photos is drawn: a sample of k photos is the
    first k, so the rate probe's photos (the first few) are in every sample and their masks are
    reused, and a resumed run draws the same sample."""
    return np.random.default_rng(1).permutation(count).tolist()


def grabcut_masks(
    cache: ImageCache,
    mask_dir: Path,
    deadline_s: float,
    control: RunControl,
    step0: int,
    stats: dict[str, int] | None = None,
    photos: int | None = None,
) -> Generator[Event, None, dict[int, np.ndarray]]:
    """GrabCut masks for the cache's photos (cached ones read back), as {cache index: mask}.

    Stops computing new masks after ``deadline_s`` seconds once ``MIN_MASKS`` are there, or on a
    stop request. ``photos`` limits the work to a fixed sample of that many photos (the same
    sample on a resume: ``--steps`` runs stay reproducible). ``stats`` (if given) receives
    counts of reused and computed masks.
    """
    t0 = time.perf_counter()
    masks: dict[int, np.ndarray] = {}
    todo: list[tuple[int, str, str]] = []
    vanished: list[str] = []
    chosen = range(len(cache.paths))
    if photos is not None and photos < len(cache.paths):
        chosen = sorted(sample_order(len(cache.paths))[:photos])
    for i in chosen:
        path = cache.paths[i]
        try:
            dst = mask_dir / f"{cache_key(path)}.png"
        except OSError as exc:  # the photo vanished since it was read: train without it
            log.debug("skipping %s: %s", path, exc)  # reported once, by the event below
            vanished.append(f"{path}: {exc.strerror or exc}")
            continue
        mask = load_cached(dst) if dst.exists() else None
        if mask is not None:
            masks[i] = mask
        else:
            todo.append((i, str(path), str(dst)))
    if vanished:
        yield WarningEvent(step=step0, message=f"GrabCut skipped {len(vanished)} photos that "
                           f"are gone since they were read (first: {vanished[0]})")
    reused = len(masks)
    computed = 0
    if todo:
        mask_dir.mkdir(parents=True, exist_ok=True)
        order = np.random.default_rng(0).permutation(len(todo))  # a spread sample if cut short
        todo = [todo[k] for k in order]
        need = min(MIN_MASKS, len(chosen))
        yield PhaseChanged(step=step0, phase=PHASE, detail=f"GrabCut masks for {len(todo)} photos")
        pool = background_pool() if len(todo) > INLINE_MAX else None
        results = _run_pool(pool, todo) if pool is not None else _run_inline(todo)
        last_report = 0.0
        try:
            for i, src, dst, error, left in results:
                computed += 1
                mask = load_cached(dst) if error is None else None
                if mask is None:
                    msg = f"GrabCut skipped {src}: {error or 'mask unreadable'}"
                    log.debug(msg)  # reported once, by the event
                    yield WarningEvent(step=step0, message=msg)
                else:
                    masks[i] = mask
                elapsed = time.perf_counter() - t0
                if elapsed - last_report >= 1.0 or left == 0:
                    last_report = elapsed
                    rate = computed / elapsed if elapsed > 0 else 0.0
                    yield Progress(
                        step=step0,
                        phase=PHASE,
                        steps_per_s=rate,
                        elapsed_s=elapsed,
                        eta_s=left / rate if rate > 0 else None,
                        fraction=computed / len(todo),
                        unit="photos",
                        done=computed,
                        total=len(todo),
                    )
                if control.paused:
                    control.wait_if_paused()
                if control.stop_requested:
                    break
                if elapsed > deadline_s and (len(masks) >= need or elapsed > HARD_SHARE * deadline_s):
                    log.info("GrabCut: time share used, training with %d masks", len(masks))
                    break
        finally:
            results.close()
            if pool is not None:
                # Not waiting: photos already running in a worker finish in the background and
                # land in the cache for a resumed run, while training starts now.
                pool.shutdown(wait=False, cancel_futures=True)
    if stats is not None:
        stats.update(reused=reused, computed=computed)
    log.info("GrabCut masks: %d reused, %d computed", reused, computed)
    return masks


def _training_arrays(
    cache: ImageCache, masks: dict[int, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Cache images and their masks cropped/resized the same way (N, S, S, 3) and (N, S, S)."""
    side = cache.images.shape[1]
    idx = sorted(masks)
    mask_arr = np.stack([square_resize(masks[i], side) for i in idx])
    return cache.images[idx], mask_arr


def make_sampler(images: np.ndarray, masks: np.ndarray, size: int, seed: int = 0) -> Sampler:
    """sample(n): random photos, one random ``size`` crop each (same window for the mask)."""
    rng = np.random.default_rng(seed)
    side = images.shape[1]

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = rng.integers(0, len(images), size=n)
        offs = rng.integers(0, side - size + 1, size=(n, 2))
        img = np.empty((n, size, size, 3), np.uint8)
        msk = np.empty((n, size, size), np.uint8)
        for k, (i, (y, x)) in enumerate(zip(idx, offs, strict=True)):
            img[k] = images[i, y : y + size, x : x + size]
            msk[k] = masks[i, y : y + size, x : x + size]
        m = torch.from_numpy(msk).float().div_(255.0).unsqueeze(1)
        return to_tensor(img), m

    return sample


def _reuse_prior(path: Path, size: int, device: torch.device) -> UNet | None:
    if not path.exists():
        return None
    try:
        model, info = load_segmenter(path, device)
    except SegmenterLoadError as exc:
        log.warning("retraining the prior: %s", exc)
        return None
    if info.size != size or info.method != METHOD:
        return None
    return model


def grabcut_sampler(
    cache: ImageCache,
    mask_dir: Path,
    size: int,
    budget_s: float,
    control: RunControl,
    step0: int,
    photos: int | None = None,
    grabcut_share: float | None = None,
) -> Generator[Event, None, Sampler | None]:
    """GrabCut the folder (cached in ``mask_dir``) within ``grabcut_share`` of ``budget_s``, drop
    the masks that look failed, and return a sampler of (photo crop, mask crop) pairs; None when
    stopped or without a mask. The prior's labels, and ReDO's warm start's."""
    masks: dict[int, np.ndarray] = {}
    if distributed.is_main():  # under torchrun rank 0 GrabCuts, the others receive its masks
        masks = yield from grabcut_masks(
            cache, mask_dir, (grabcut_share or GRABCUT_SHARE) * budget_s, control, step0,
            photos=photos
        )
    masks = distributed.broadcast_object(masks)  # type: ignore[assignment]
    if distributed.stop_agreed(control) or not masks:
        if not masks:
            yield WarningEvent(step=step0, message="GrabCut gave no masks; the prior is untrained")
        return None
    images, mask_arr = _training_arrays(cache, masks)
    keep = filter_pairs(torch.empty(0), torch.from_numpy(mask_arr).float().div_(255.0).unsqueeze(1))
    n_keep = int(keep.sum())
    if n_keep < len(keep):
        share = 1 - n_keep / len(keep)
        msg = (
            f"{len(keep) - n_keep} of {len(keep)} GrabCut masks look failed (empty, full or specks)"
        )
        log.info(msg)
        if share > 0.5:
            yield WarningEvent(step=step0, message=msg + "; the prior may be weak on this folder")
    if n_keep > 0:
        keep_np = keep.numpy()
        images, mask_arr = images[keep_np], mask_arr[keep_np]
    return make_sampler(images, mask_arr, size)


def bootstrap_prior(
    cache: ImageCache,
    run_dir: Path,
    size: int,
    device: torch.device,
    budget_s: float,
    control: RunControl,
    step0: int,
    steps: int | None = None,
    photos: int | None = None,
    grabcut_share: float | None = None,
) -> Generator[Event, None, UNet]:
    """GrabCut the folder (cached), train a UNet on it within ``budget_s``; return it frozen.

    ``steps`` also caps training at a step count (benchmarks use it with a generous budget, so that
    a busy CPU changes how long the prior takes, not what it is); ``photos`` caps the GrabCut
    work at a fixed sample of the folder (``--steps`` mode scales it from the GAN steps; the
    rated plan sizes it to the budget); ``grabcut_share`` is the share of ``budget_s`` GrabCut
    may take (default ``GRABCUT_SHARE``; the rated plan knows what the sample costs here).

    On a stop request the net is returned as it is (possibly untrained) and ``prior.pt`` is not
    written, so a resumed run trains it again (with the masks already computed).
    """
    boot_dir = Path(run_dir) / "bootstrap"
    prior_path = boot_dir / "prior.pt"
    yield PhaseChanged(step=step0, phase=PHASE, detail="label-free prior from GrabCut masks")
    reused = _reuse_prior(prior_path, size, device)
    if reused is not None:
        log.info("reusing %s", prior_path)
        yield PhaseChanged(step=step0, phase=PHASE, detail=f"reusing {prior_path}")
        return reused.eval().requires_grad_(False)

    t0 = time.perf_counter()
    unet = UNet(prior_config())
    if len(cache) == 0:
        yield WarningEvent(
            step=step0, message="no photos to bootstrap from; the prior is untrained"
        )
        return unet.to(device).eval().requires_grad_(False)
    sample = yield from grabcut_sampler(cache, boot_dir / "masks", size, budget_s, control, step0,
                                        photos, grabcut_share)
    if sample is None:
        return unet.to(device).eval().requires_grad_(False)
    remaining = max(budget_s - (time.perf_counter() - t0), 0.1 * budget_s)
    unet = yield from fit_unet(sample, unet, device, remaining, steps, BATCH, control, PHASE, step0,
                               coarse_share=COARSE_SHARE)
    unet.eval().requires_grad_(False)
    if not control.stop_requested and distributed.is_main():
        source = cache.paths[0].parent.name if cache.paths else ""
        save_segmenter(prior_path, unet, size=size, method=METHOD, source=source)
        log.info("saved %s", prior_path)
    return unet
