"""Setting a layered-GAN run up: threads, device, torchrun, the saved state of a resumed run
(checked against the config asked for), the photos, the method and its fixed latent codes, the
stage plan. Every refusal here is the user's to fix, so it is an ``InputError`` (one line, exit 2).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine import config as config_mod
from engine.config import RunConfig
from engine.data import RandomCropDataset, few_photos, load_training_photos
from engine.device import configure_cpu_threads, pick_device
from engine.errors import InputError
from engine.methods import build_method
from engine.parallel import distributed
from engine.runs import checkpoint as ckpt
from engine.train import rates as rates_mod
from engine.train.context import StageContext
from engine.train.plan import (
    Measured,
    Rates,
    available_seconds,
    estimate_line,
    gate_warnings,
    needed_work_s,
    plan_stages,
    rates_decide,
)
from engine.train.threads import choose_threads

log = logging.getLogger(__name__)

GUARD_SAMPLES = 64
MAX_BAD_FILE_WARNINGS = 10


def setup_run(ctx: StageContext, resume: bool) -> tuple[dict[str, Any] | None, list[tuple[str, str]]]:
    """Threads, device, the saved state of a resumed run, the photos, the method, the plan.

    Returns the checkpoint payload (None for a fresh start) and (kind, text) warnings to show.
    """
    cfg = ctx.config
    configure_cpu_threads(cfg.threads)
    ctx.device, device_warning = pick_device(cfg.device)
    if (not cfg.threads and cfg.minutes is not None and ctx.device.type == "cpu"
            and not distributed.launched()):
        # --steps runs keep every core: their weights must not depend on a timing.
        ctx.threads_note = choose_threads(cfg.size)[1]
    # Under torchrun: join the process group, cuda:LOCAL_RANK; only rank 0 writes the run.
    ctx.device = distributed.setup(ctx.device, cfg.threads)
    distributed.check_batch(cfg.batch, "--batch")
    if not distributed.is_main():
        ctx.metrics = distributed.NullLog()
    payload, saved_folder = resume_payload(ctx) if resume else (None, None)
    if payload is None and ckpt.list_checkpoints(ctx.run_dir):
        raise InputError(
            f"{ctx.run_dir} already holds a run; resume it (--resume) or choose a new folder"
        )

    ctx.reseed(ctx.seed)
    cache, bad_files = load_training_photos(cfg.folder, cfg.size)
    # Only now: a config.json written before the photos were read let --resume "continue" a run
    # whose folder had no usable photo.
    if distributed.is_main():
        ctx.folder.write_config(cfg)
    ctx.dataset = RandomCropDataset(cache, cfg.size)
    ctx.method = build_method(cfg, ctx.device)
    codes_rng = torch.Generator().manual_seed(cfg.seed + 1)
    ctx.preview_codes = ctx.method.sample_codes(cfg.preview_count, codes_rng)
    ctx.guard_codes = ctx.method.sample_codes(GUARD_SAMPLES, codes_rng)
    ctx.measured = saved_measure(payload) if payload is not None else None
    if ctx.measured is None and payload is None and wants_rates(cfg):
        ctx.measured = measure(ctx)
    ctx.stages = plan_stages(cfg, ctx.measured)
    if payload is not None:
        ctx.restore(payload)
        ctx.metrics.truncate_after(ctx.step)

    warnings = [("warning", device_warning)] if device_warning else []
    if saved_folder is not None and Path(saved_folder).resolve() != Path(cfg.folder).resolve():
        warnings.append(("warning", f"resuming with the photos in {cfg.folder}; the run was "
                                    f"trained on {saved_folder} until now"))
    if (few := few_photos(len(cache), cfg.batch)) is not None:
        warnings.append(("few-photos", few))
    warnings += [("bad-file", f"skipped {line}") for line in bad_files[:MAX_BAD_FILE_WARNINGS]]
    if len(bad_files) > MAX_BAD_FILE_WARNINGS:
        warnings.append(("bad-file", f"skipped {len(bad_files)} unreadable files in all"))
    warnings += [("warning", text) for text in gate_warnings(cfg)]
    if ctx.measured is not None and payload is None and cfg.minutes is not None:
        line = estimate_line(ctx.measured.photos, ctx.measured.rates, cfg.minutes,
                             ctx.measured.separation)
        if line is not None:
            warnings.append(("estimate", line))
    return payload, warnings


def wants_rates(cfg: RunConfig) -> bool:
    """Whether the plan is built from measured rates (``rates_decide``), in one process: under
    torchrun every rank must plan alike, so fixed shares there."""
    return rates_decide(cfg) and not distributed.launched()


def measure(ctx: StageContext) -> Measured:
    """This machine's rates, timed now on the run's clock (the probe is paid out of the
    budget), and kept for the app's estimate. The GAN is timed only when the time left could
    hold more than the segmenter's needed work (else it cannot run anyway)."""
    cfg = ctx.config
    assert ctx.dataset is not None and cfg.minutes is not None
    total = cfg.minutes * 60
    photos = len(ctx.dataset.cache)
    masks = ctx.run_dir / "bootstrap" / "masks"
    grabcut_s = rates_mod.time_grabcut(ctx.dataset.cache, masks)
    separation = rates_mod.probe_separation(ctx.dataset.cache, masks)
    fit_step_s = rates_mod.time_fit_step(cfg.size, ctx.device)
    coarse_step_s = rates_mod.time_coarse_step(cfg.size, ctx.device)
    gan_step_s = None
    need = needed_work_s(photos, Rates(grabcut_s, fit_step_s), separation)
    if cfg.pipeline.gan and available_seconds(total, ctx.clock.elapsed_s()) > need:
        real = ctx.dataset.sample_batch(cfg.batch, np.random.default_rng(cfg.seed))
        try:
            gan_step_s = rates_mod.time_gan_step(cfg, ctx.device, real.to(ctx.device))
        except RuntimeError as exc:  # out of memory, say: the GAN is then not planned
            log.warning("timing a GAN step failed (%s); the plan leaves the GAN out", exc)
    rates = Rates(grabcut_s, fit_step_s, gan_step_s, coarse_step_s)
    if distributed.is_main():
        rates_mod.save_rates(rates, ctx.device, cfg.size)
    return Measured(rates, photos, available_seconds(total, ctx.clock.elapsed_s()), separation)


def saved_measure(payload: dict[str, Any]) -> Measured | None:
    """The rates, photo count and time the saved run planned with (a resume plans alike)."""
    saved = payload.get("measured")
    if not isinstance(saved, dict):
        return None
    rates = rates_mod.rates_from(saved)
    sep = saved.get("separation")  # absent in checkpoints from before the measure
    return Measured(rates, int(saved["photos"]), float(saved["available_s"]),
                    None if sep is None else float(sep))


def resume_payload(ctx: StageContext) -> tuple[dict[str, Any] | None, str]:
    """The last checkpoint of the run to resume (None: killed before its first) and the photo
    folder the run was trained on."""
    saved_path = ctx.folder.config_path
    if not saved_path.exists():
        raise InputError(f"nothing to resume in {ctx.run_dir} (no config.json)")
    try:
        saved = RunConfig.from_dict(json.loads(saved_path.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as exc:
        raise InputError(f"{saved_path} is not a valid run configuration ({exc})") from exc
    problems = config_mod.resume_mismatch(saved, ctx.config)
    if problems:
        raise InputError("cannot resume: the run was trained differently (" + "; ".join(problems) + ")")
    if distributed.is_main():
        ckpt.remove_stale_temps(ctx.run_dir)  # half-written files of a killed run
    found = ckpt.list_checkpoints(ctx.run_dir)
    if not found:
        return None, saved.folder  # killed before the first checkpoint: start again from step 0
    return ckpt.load(found[-1]), saved.folder
