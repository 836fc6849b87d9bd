"""A GAN stage of the layered-GAN pipeline: train the method's GAN, guarded against collapse.

The loop steps the GAN, reports at ``log_every`` steps, checks the guard (collapse, non-finite
losses) and on trouble restores the good checkpoint with a new seed (``recover``), writes previews
and checkpoints at their cadences. With a segmenter at hand (after the bootstrap or a segmenter
stage) the GAN learns L_bg from it and, for PerturbGAN, a size floor read from the photos.
"""

from __future__ import annotations

import logging
from collections.abc import Generator

import torch

from engine.events import Event, Losses, PhaseChanged, Preview, WarningEvent
from engine.loop import Budget, run_steps
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
    """Train the GAN until the stage's budget (global end step or seconds) is used."""
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
    base = ctx.stage_start_step
    # --steps mode: the stage ends at a GAN step (``end_step`` counts GAN steps only, so the
    # prior's and the segmenter fits' steps before it never shorten it).
    gan_base = base - ctx.non_gan_steps
    budget = Budget.resumed(
        stage.budget_s, None if stage.end_step is None else stage.end_step - gan_base,
        done=ctx.step - base, elapsed_s=ctx.stage_elapsed,
    )
    reported = {"step": -1}  # the last step on_report saw
    latest: dict[str, torch.Tensor] = {}  # the last step's losses (floats only when reported)

    def step(frac: float) -> dict[str, torch.Tensor]:
        assert ctx.dataset is not None and ctx.method is not None
        real = ctx.dataset.sample_batch(cfg.batch, ctx.data_rng)
        losses = ctx.method.step(real)  # ctx.method: a recovery may rebuild it
        ctx.step += 1
        latest.clear()
        latest.update(losses)
        return dict(latest)

    def restored() -> bool:
        """After a recovery: the budget continues from the restored step, the clock runs on."""
        budget.done = ctx.step - base
        return True

    def on_report(step: int, values: dict[str, float]) -> Generator[Event, None, bool]:
        ctx.stage_elapsed = budget.elapsed_s
        reported["step"] = step
        if ctx.method is not None and ctx.method.nonfinite is not None:
            return False  # the step was not applied: after_step recovers
        if (yield from guard(ctx, stage, values)):
            return restored()
        return False

    def after_step(step: int) -> Generator[Event, None, bool]:
        ctx.stage_elapsed = budget.elapsed_s
        assert ctx.method is not None
        if ctx.method.nonfinite is not None:  # the step was not applied (methods/base.py)
            if reported["step"] != step:
                yield Losses(step, stage.name, {k: float(v) for k, v in latest.items()})
            yield from recover(ctx, f"loss {ctx.method.nonfinite}", lower_lr=True)
            return restored()
        if step % cfg.preview_every == 0:
            yield preview(ctx)
        if step % cfg.checkpoint_every == 0:
            if (yield from guard(ctx, stage, None)):
                return restored()
            yield ctx.checkpoint(good=healthy_now(ctx))
        return False

    yield from run_steps(step, budget, ctx.control, stage.name, base,
                         report_every=cfg.log_every, average=False, on_report=on_report,
                         after_step=after_step)
    ctx.stage_elapsed = budget.elapsed_s
    yield preview(ctx)


def attach_priors(ctx: StageContext, method: LayeredGan) -> None:
    """What the current GAN stage learns from the segmenter: L_bg and the size floor."""
    pipe = ctx.config.pipeline
    method.set_segmenter(ctx.segmenter, pipe.bg_weight, pipe.mask_prior_weight)
    method.set_size_floor(ctx.floor.value if ctx.floor is not None else None)


def health(ctx: StageContext, values: dict[str, float] | None) -> tuple[Verdict, MaskStats]:
    """Guard verdict for the current step (NaN losses first, then mask statistics)."""
    assert ctx.method is not None
    stats = stats_of(ctx.method, ctx.guard_codes)
    ctx.last_stats = stats
    bad = non_finite(values) if values is not None else None
    verdict = Verdict(False, bad) if bad else check(stats, ctx.gan_steps(), ctx.config.guard)
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
    yield from recover(ctx, verdict.reason, lower_lr=values is not None and bool(non_finite(values)),
                       shape=verdict.shape)
    return True


def recover(ctx: StageContext, reason: str, lower_lr: bool = False,
            shape: bool = False) -> Generator[Event, None, None]:
    """Restore the good checkpoint (or restart the stage) with a new seed.

    A collapse gets a new seed only; a non-finite loss (``lower_lr``) also halves both
    learning rates, since a step that overflowed once tends to overflow again from the same
    weights at the same rate. A failed shape check (``shape``: swapped layers, a grey mask) never
    restores a generator saved inside the guard's grace: those checks had not judged it, and on
    the flowers its layers were already swapped (60 min: four recoveries to GAN step 530, each
    failing again 75 steps later), so the stage restarts from scratch instead.
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
    payload = ckpt.load(good) if good.exists() else None
    if payload is not None and shape and not judged_on_shape(ctx, int(payload["step"])):
        payload = None
    if payload is not None:
        assert ctx.method is not None
        ctx.method.load_state_dict(payload["method"])
        # A good checkpoint from before this stage (written before a segmenter stage) gives the
        # weights; the count restarts at the stage's start, never inside an earlier stage's steps.
        ctx.step = max(int(payload["step"]), ctx.stage_start_step)
        where = f"restored the good checkpoint of step {int(payload['step'])}"
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


def judged_on_shape(ctx: StageContext, step: int) -> bool:
    """Whether the guard's shape checks had run on the generator saved at global ``step``: past
    the grace, or before this stage (its weights are then the stage's start, not a trajectory
    that failed)."""
    gan_steps = step - ctx.non_gan_steps
    return step <= ctx.stage_start_step or gan_steps >= ctx.config.guard.grace_steps


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
