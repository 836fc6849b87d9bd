"""A GAN stage of the layered-GAN pipeline: train the method's GAN, guarded against collapse.

The loop steps the GAN, reports at ``log_every`` steps, checks the guard (collapse, non-finite
losses) and on trouble restores the good checkpoint with a new seed (``recover``), writes previews
and checkpoints at their cadences. With a segmenter at hand (after the bootstrap or a segmenter
stage) the GAN learns L_bg from it and, for PerturbGAN, a size floor read from the photos.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator

import torch

from engine.events import Event, Losses, PhaseChanged, Preview, Progress, WarningEvent
from engine.methods import LayeredGan, build_method
from engine.parallel import distributed
from engine.runs import checkpoint as ckpt
from engine.runs.previews import write_grid
from engine.train.collapse import MaskStats, Verdict, check, mask_stats, non_finite
from engine.train.context import RunError, StageContext
from engine.train.plan import Stage
from engine.train.previews import sample_arrays
from engine.train.size_floor import size_floor

log = logging.getLogger(__name__)


def gan_stage(ctx: StageContext, stage: Stage) -> Generator[Event, None, None]:
    cfg, method = ctx.config, ctx.method
    assert method is not None
    ctx.floor = None
    if ctx.segmenter is not None and method.has_size_floor:
        ctx.floor = size_floor(ctx.segmenter, ctx.dataset.cache, cfg.size, ctx.device,
                                ceiling=cfg.perturbgan.eta)
    attach_priors(ctx, method)
    if ctx.floor is not None:
        ctx.metrics.append({"step": ctx.step, "event": "size_floor", "value": ctx.floor.value,
                             "measured": ctx.floor.measured, "photos": ctx.floor.photos})
        yield PhaseChanged(ctx.step, stage.name, ctx.floor.describe())
    start = time.perf_counter() - ctx.stage_elapsed
    window_t, window_step = time.perf_counter(), ctx.step
    rate = 0.0
    while not stage_done(ctx, stage, time.perf_counter() - start):
        if distributed.stop_agreed(ctx.control):
            break
        if ctx.control.paused:
            paused_at = time.perf_counter()
            stop = ctx.control.wait_if_paused()
            start += time.perf_counter() - paused_at  # paused time is not training time
            window_t += time.perf_counter() - paused_at
            if stop:
                break
        real = ctx.dataset.sample_batch(cfg.batch, ctx.data_rng)
        losses = ctx.method.step(real)  # not ``method``: a recovery may rebuild it
        ctx.step += 1
        ctx.stage_elapsed = time.perf_counter() - start
        if ctx.method.nonfinite is not None:  # the step was not applied (methods/base.py)
            yield Losses(ctx.step, stage.name, {k: float(v) for k, v in losses.items()})
            yield from recover(ctx, f"loss {ctx.method.nonfinite}", lower_lr=True)
            start = time.perf_counter() - ctx.stage_elapsed
            continue
        done = stage_done(ctx, stage, ctx.stage_elapsed)
        if ctx.step % cfg.log_every == 0 or done:
            now = time.perf_counter()
            rate = (ctx.step - window_step) / max(now - window_t, 1e-9)
            window_t, window_step = now, ctx.step
            values = {k: float(v) for k, v in losses.items()}
            yield Losses(ctx.step, stage.name, values)
            yield progress(ctx, stage, rate)
            restored = yield from guard(ctx, stage, values)
            if restored:
                start = time.perf_counter() - ctx.stage_elapsed
                continue
        if ctx.step % cfg.preview_every == 0:
            yield preview(ctx)
        if ctx.step % cfg.checkpoint_every == 0:
            restored = yield from guard(ctx, stage, None)
            if restored:
                start = time.perf_counter() - ctx.stage_elapsed
                continue
            yield ctx.checkpoint(good=healthy_now(ctx))
    yield preview(ctx)


def attach_priors(ctx: StageContext, method: LayeredGan) -> None:
    """What the current GAN stage learns from the segmenter: L_bg and the size floor."""
    pipe = ctx.config.pipeline
    method.set_segmenter(ctx.segmenter, pipe.bg_weight, pipe.mask_prior_weight)
    method.set_size_floor(ctx.floor.value if ctx.floor is not None else None)


def stage_done(ctx: StageContext, stage: Stage, elapsed: float) -> bool:
    if stage.end_step is not None:
        return ctx.step >= stage.end_step
    # Under torchrun the budget runs on rank 0's clock, so all ranks stop at the same step.
    return distributed.agree_done(stage.budget_s is not None and elapsed >= stage.budget_s)


def progress(ctx: StageContext, stage: Stage, rate: float) -> Progress:
    if stage.end_step is not None:
        remaining = stage.end_step - ctx.step
        eta = remaining / rate if rate > 0 else None
        span = stage.end_step - ctx.stage_start_step
        fraction = 1 - remaining / span if span > 0 else 1.0
    else:
        budget = stage.budget_s or 0.0
        eta = max(0.0, budget - ctx.stage_elapsed)
        fraction = min(1.0, ctx.stage_elapsed / budget) if budget else None
    return Progress(ctx.step, stage.name, rate, ctx.stage_elapsed, eta, fraction)


def health(ctx: StageContext, values: dict[str, float] | None) -> tuple[Verdict, MaskStats]:
    """Guard verdict for the current step (NaN losses first, then mask statistics)."""
    assert ctx.method is not None
    stats = stats_of(ctx.method, ctx.guard_codes)
    ctx.last_stats = stats
    bad = non_finite(values) if values is not None else None
    verdict = Verdict(False, bad) if bad else check(stats, ctx.step, ctx.config.guard)
    ctx.last_verdict = (ctx.step, verdict)
    return verdict, stats


def healthy_now(ctx: StageContext) -> bool:
    if ctx.last_verdict is None or ctx.last_verdict[0] != ctx.step:
        health(ctx, None)
    assert ctx.last_verdict is not None
    return ctx.last_verdict[1].ok


def guard(ctx: StageContext, stage: Stage, values: dict[str, float] | None) -> Generator[Event, None, bool]:
    """Check health, log metrics; on collapse restore the good checkpoint (True if restored)."""
    if values is None and ctx.last_verdict is not None and ctx.last_verdict[0] == ctx.step:
        verdict = ctx.last_verdict[1]
    else:
        verdict, stats = health(ctx, values)
        record = {"step": ctx.step, "phase": stage.name, "time": round(ctx.stage_elapsed, 2)}
        record.update(values or {})
        record.update({f"mask_{k}": v for k, v in stats.to_dict().items()})
        if ctx.segmenter is not None:
            record["s_bg"] = segmenter_on_background(ctx)
        ctx.metrics.append(record)
    if verdict.ok:
        return False
    yield from recover(ctx, verdict.reason, lower_lr=values is not None and bool(non_finite(values)))
    return True


def recover(ctx: StageContext, reason: str, lower_lr: bool = False) -> Generator[Event, None, None]:
    """Restore the good checkpoint (or restart the stage) with a new seed.

    A collapse gets a new seed only; a non-finite loss (``lower_lr``) also halves both
    learning rates, since a step that overflowed once tends to overflow again from the same
    weights at the same rate.
    """
    limit = ctx.config.guard.max_restarts
    ctx.restarts += 1
    if ctx.restarts > limit:
        raise RunError(
            f"training collapsed {ctx.restarts} times (last: {reason} at step {ctx.step}); "
            "try another --seed, --method or a smaller --size"
        )
    ctx.seed = ctx.config.seed + 1000 * ctx.restarts
    good = ckpt.good_path(ctx.run_dir)
    old_step = ctx.step
    if good.exists():
        payload = ckpt.load(good)
        assert ctx.method is not None
        ctx.method.load_state_dict(payload["method"])
        ctx.step = int(payload["step"])
        where = f"restored the good checkpoint of step {ctx.step}"
    else:
        ctx.method = build_method(ctx.config, ctx.device)
        attach_priors(ctx, ctx.method)
        ctx.step = ctx.stage_start_step
        where = f"restarted from scratch at step {ctx.step}"
    if lower_lr:
        ctx.lr_scale *= 0.5
    ctx.apply_lr_scale()
    ctx.reseed(ctx.seed)
    ctx.last_verdict = None
    # Make the recovery durable before anything else: a kill from here on resumes from the
    # restored weights with the new seed and rate, never from a later checkpoint of the
    # abandoned trajectory (those are deleted once this one is on disk).
    yield ctx.checkpoint(good=good.exists())
    if distributed.is_main():
        ckpt.drop_after(ctx.run_dir, ctx.step)
    what = "non-finite loss" if lower_lr else "collapse"
    lr_note = f" and learning rates x{ctx.lr_scale:g}" if lower_lr else ""
    message = (
        f"{what} at step {old_step}: {reason}; {where} with seed {ctx.seed}{lr_note} "
        f"(recovery {ctx.restarts} of {limit})"
    )
    log.warning(message)
    ctx.metrics.append({"step": ctx.step, "event": "recovered", "reason": reason, "from_step": old_step})
    yield WarningEvent(ctx.step, message, kind="collapse")


def segmenter_on_background(ctx: StageContext) -> float:
    """Layer-assignment diagnostic: how much object the segmenter finds in the backgrounds."""
    assert ctx.method is not None
    sample = ctx.method.sample(ctx.guard_codes[:16])
    with torch.no_grad():
        return float(torch.sigmoid(ctx.segmenter(sample.background)).mean())


def preview(ctx: StageContext) -> Preview:
    assert ctx.method is not None
    sample = ctx.method.sample(ctx.preview_codes, ema=True)
    arrays = sample_arrays(sample)
    path = ctx.run_dir / "previews" / f"step-{ctx.step:07d}.png"
    if distributed.is_main():
        write_grid(path, arrays)
    return Preview(ctx.step, **arrays, coverage=float(sample.mask.mean()), path=str(path))


def stats_of(method: LayeredGan, codes: torch.Tensor) -> MaskStats:
    """Mask statistics of the live generator (not the EMA: the guard must see collapse early)."""
    return mask_stats(method.sample(codes, ema=False).mask)
