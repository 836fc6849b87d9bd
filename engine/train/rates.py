"""This machine's speed, measured in a ``--minutes`` run's first seconds, and the last one kept.

The rated plan (``plan.rated_plan``) decides which stages run and how long each gets from how
fast this machine GrabCuts a photo and steps the UNet and the GAN, not from fixed fractions: a
2-core laptop and a GPU box need different plans for the same budget. The probe is short (one or
two photos, a few steps: seconds) and runs on the run's clock, so it is paid out of the budget.
Its GrabCut masks land in the run's mask cache, where the bootstrap reuses them.

The last measured rates are also kept in the user's data directory (``appdirs``), keyed by
device and size, so the app can say "about N minutes here" before *Start* without a probe.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import appdirs
import numpy as np
import torch
import torch.nn.functional as F

from engine.atomic import write_text
from engine.config import RunConfig
from engine.data import ImageCache
from engine.train.plan import Rates

log = logging.getLogger(__name__)

# Photos GrabCut-ed by the probe: enough for the folder's colour separation (12 photos' means
# stayed on their side of the threshold on the dev folders; 8 came within 0.007 of it), and their
# masks are reused by the bootstrap (they are the first of its sample order).
PROBE_PHOTOS = 12
PROBE_FIT_STEPS = 3
PROBE_GAN_STEPS = 1


def cache_file() -> Path:
    """Where the last measured rates are kept (the user's data directory)."""
    return Path(appdirs.user_data_dir("Peel")) / "rates.json"


def cache_key(device: torch.device | str, size: int) -> str:
    return f"{torch.device(device).type}-{size}"


def time_grabcut(cache: ImageCache, mask_dir: Path, photos: int = PROBE_PHOTOS) -> float:
    """Seconds per photo of the bootstrap's GrabCut, on the folder's own photos; the masks are
    written to ``mask_dir`` (the run's cache: the bootstrap reuses them, the time is not lost)."""
    from engine.segmenter.grabcut_cache import cache_key as mask_key
    from engine.segmenter.grabcut_cache import compute_one

    mask_dir.mkdir(parents=True, exist_ok=True)
    times = []
    for path in probe_paths(cache, photos):
        dst = mask_dir / f"{mask_key(path)}.png"
        t0 = time.perf_counter()
        compute_one((str(path), str(dst)))  # an unreadable photo costs its time too
        times.append(time.perf_counter() - t0)
    return float(np.mean(times)) if times else 0.0


def probe_paths(cache: ImageCache, photos: int = PROBE_PHOTOS) -> list[Path]:
    """The photos the probe GrabCuts: the first of the bootstrap's sample order (a spread sample:
    a folder sorted by kind is not judged by its first kind)."""
    from engine.segmenter.bootstrap import sample_order

    return [cache.paths[i] for i in sample_order(len(cache.paths))[:photos]]


def probe_separation(cache: ImageCache, mask_dir: Path, photos: int = PROBE_PHOTOS) -> float | None:
    """The folder's colour separation (``engine/segmenter/separation.py``) on the probe's GrabCut
    masks (read back from ``mask_dir``); None when none is readable. Costs a read per photo."""
    from engine.imageio import ImageReadError, read_mask, read_rgb
    from engine.segmenter.grabcut_cache import cache_key as mask_key
    from engine.segmenter.grabcut_cache import working_copy
    from engine.segmenter.separation import folder_separation

    pairs = []
    for path in probe_paths(cache, photos):
        dst = mask_dir / f"{mask_key(path)}.png"
        try:
            rgb, mask = working_copy(read_rgb(path)), read_mask(dst)
        except (ImageReadError, OSError):
            continue  # an unreadable photo was reported when the folder was read
        if mask.shape == rgb.shape[:2]:
            pairs.append((rgb, mask))
    return folder_separation(pairs)


def time_fit_step(size: int, device: torch.device, steps: int = PROBE_FIT_STEPS) -> float:
    """Seconds per step of the prior's fit (the bootstrap's UNet, batch and augmentation) at
    ``size``: the median of ``steps`` after one warm-up step (a shared machine's load comes and
    goes: one slow or fast step does not set the plan); the RNGs are left as they were."""
    from engine.nets.unet import UNet
    from engine.segmenter.augment import AugmentConfig, augment_pairs
    from engine.segmenter.bootstrap import BATCH, prior_config

    with torch.random.fork_rng(devices=[]):
        net = UNet(prior_config()).to(device, memory_format=torch.channels_last).train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        images = torch.rand(BATCH, 3, size, size, device=device) * 2 - 1
        masks = (torch.rand(BATCH, 1, size, size, device=device) > 0.5).float()
        times = []
        for k in range(steps + 1):
            t0 = time.perf_counter()
            x, m = augment_pairs(images, masks, AugmentConfig())
            loss = F.binary_cross_entropy_with_logits(
                net(x.contiguous(memory_format=torch.channels_last)).float(), m)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            _sync(device)
            if k > 0:
                times.append(time.perf_counter() - t0)
    return float(np.median(times))


def time_coarse_step(size: int, device: torch.device) -> float | None:
    """Seconds per step of the prior fit's coarse phase (``fit.COARSE_SHARE``: half the side),
    or None where a fit at ``size`` has none."""
    from engine.nets.unet import UNet
    from engine.segmenter.bootstrap import prior_config
    from engine.segmenter.fit import coarse_ok

    if not coarse_ok((size, size), UNet(prior_config()).stride):
        return None
    return time_fit_step(size // 2, device)


def time_gan_step(config: RunConfig, device: torch.device, real: torch.Tensor,
                  steps: int = PROBE_GAN_STEPS) -> float:
    """Seconds per step of the run's GAN, on a throwaway copy (its own init, RNGs left as they
    were), after one warm-up step.

    As the GAN stages step it: after the bootstrap every G step also runs the frozen prior on
    the backgrounds (L_bg), a UNet forward and backward at the batch's size. Timed without it,
    the probe said 0.51 s a step on one core where the stage then stepped at 0.85 s, and the
    plan gave the GAN 1,800 of the 3,000 steps its gate asks for (bench/RESULTS.md, session 9).
    """
    from engine.methods import build_method
    from engine.nets.unet import UNet
    from engine.segmenter.bootstrap import prior_config

    pipe = config.pipeline
    with torch.random.fork_rng(devices=[]):
        method = build_method(config, device)
        if pipe.bootstrap and (pipe.bg_weight > 0 or pipe.mask_prior_weight > 0):
            prior = UNet(prior_config()).to(device, memory_format=torch.channels_last)
            method.set_segmenter(prior, pipe.bg_weight, pipe.mask_prior_weight)
        method.step(real)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            method.step(real)
        _sync(device)
    return (time.perf_counter() - t0) / steps


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def save_rates(rates: Rates, device: torch.device | str, size: int) -> None:
    """Keep ``rates`` as this machine's last for (device, size); never fails a run."""
    path = cache_file()
    try:
        known = _read(path)
        known[cache_key(device, size)] = {**asdict(rates), "measured_at": time.time()}
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(known, indent=1) + "\n")
    except OSError as exc:
        log.info("could not keep the measured rates in %s: %s", path, exc)


def load_rates(device: torch.device | str, size: int) -> Rates | None:
    """The last rates measured here for (device, size), or None."""
    entry = _read(cache_file()).get(cache_key(device, size))
    if not isinstance(entry, dict):
        return None
    try:
        return rates_from(entry)
    except (KeyError, TypeError, ValueError):
        return None


def rates_from(record: dict[str, Any]) -> Rates:
    """``Rates`` from a saved record (the rates file, a checkpoint's ``measured``); optional
    rates absent from older records are None. Raises KeyError, TypeError or ValueError."""

    def optional(key: str) -> float | None:
        value = record.get(key)
        return None if value is None else float(value)

    return Rates(float(record["grabcut_s"]), float(record["fit_step_s"]),
                 optional("gan_step_s"), optional("coarse_step_s"))


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def estimate_text(photos: int, size: int, device: str, minutes: float) -> str:
    """What the app shows before *Start*: the budget this folder needs here for a segmenter
    better than GrabCut, from the last rates measured on this machine (no probe: a file read)."""
    from engine.train.plan import estimate_line, needed_minutes

    if photos <= 0:
        return ""
    kind = device if device in ("cpu", "cuda") else ("cuda" if torch.cuda.is_available() else "cpu")
    rates = load_rates(kind, size)
    if rates is None:
        return ("No estimate yet: the first run with a time budget measures this machine's speed, "
                "then the minutes this folder needs are shown here.")
    line = estimate_line(photos, rates, minutes)
    if line is not None:
        return line[0].upper() + line[1:] + "."
    need = math.ceil(needed_minutes(photos, rates) * 2) / 2
    return (f"About {need:g} minutes here for a segmenter better than GrabCut on these {photos} "
            f"photos: {minutes:g} is enough.")
