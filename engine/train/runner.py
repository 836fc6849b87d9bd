"""The training pipeline as one generator of events: the CLI, the GUI and the tests all run this.

Stages, in order (each a sub-generator driven with ``yield from``):
1. ``bootstrap``: a label-free prior segmenter (GrabCut masks -> UNet), if enabled;
2. ``gan``: the layered GAN, with L_bg from the prior when there is one;
3. ``segmenter``: a UNet fitted on filtered synthetic (composite, mask) pairs of the EMA generator;
4. ``round-K-gan`` / ``round-K-segmenter``: the GAN continued with L_bg from the latest segmenter,
   then the segmenter refitted.

Everything that goes wrong becomes a ``Failed`` event (never a silent stop). Pause, resume and stop
are honoured at step boundaries; stop writes a checkpoint first, so ``--resume`` continues at the
same step. A checkpoint is written at every stage transition, so a resumed run restarts the stage
it was in (GAN stages continue mid-way).
"""


from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Iterator
from dataclasses import replace
from pathlib import Path

from engine.atomic import DiskFullError, unwritable_reason
from engine.config import RunConfig
from engine.control import RunControl
from engine.device import describe
from engine.errors import InputError, failed_event
from engine.events import (
    Event,
    Finished,
    PhaseChanged,
    PlanMade,
    Started,
    WarningEvent,
)
from engine.methods import perturbgan_encoder
from engine.parallel import distributed
from engine.runs import checkpoint as ckpt
from engine.runs.checkpoint import CheckpointError
from engine.train.context import RunError, StageContext
from engine.train.gan_stage import gan_stage, healthy_now
from engine.train.plan import (
    OPTIONAL_KINDS,
    Stage,
    describe_plan,
    gan_decision,
    rounds_note,
    stage_seconds,
)
from engine.train.segmenter_stages import bootstrap_stage, load_stage_segmenter, segmenter_stage
from engine.train.setup import setup_run
from engine.train.stage_events import logging_losses, reporting_step, with_run_eta

log = logging.getLogger(__name__)
STAGE_SEED_STRIDE = 100_003  # stage k starts from seed + stride * (k + 1)


StageFn = Callable[[StageContext, Stage], Generator[Event, None, None]]
STAGE_KINDS: dict[str, StageFn] = {
    "bootstrap": bootstrap_stage,
    "gan": gan_stage,
    "segmenter": segmenter_stage,
    perturbgan_encoder.STAGE_KIND: perturbgan_encoder.encoder_stage,
}

__all__ = ["RunError", "StageContext", "train", "train_layered_gan"]


def train(
    config: RunConfig, control: RunControl | None = None, *, resume: bool = False
) -> Iterator[Event]:
    """Run ``config.method`` (looked up in the method registry); with ``resume``, continue the
    run in ``config.out``. The one entry point the CLI, the app, compare and the tests use."""
    from engine.methods.registry import get

    why = unwritable_reason(config.out)
    if why is not None:  # before any method writes: else a traceback at its first file
        yield failed_event(InputError(f"cannot write to the run folder {config.out}: {why}"), 0,
                           (), log)
        return
    yield from get(config.method).start(config, control or RunControl(), resume)


def train_layered_gan(config: RunConfig, control: RunControl, resume: bool) -> Iterator[Event]:
    """The layered-GAN pipeline (ilgan, perturbgan): bootstrap, GAN, segmenter, rounds."""
    ctx = StageContext(config, control)
    try:
        yield from _execute(ctx, resume)
    except Exception as exc:  # every failure reaches the consumer as an event
        # The consumer reports an expected failure as one line; only a bug gets its traceback.
        yield failed_event(exc, ctx.step, (RunError, CheckpointError, DiskFullError), log)


def _execute(ctx: StageContext, resume: bool) -> Generator[Event, None, None]:
    cfg = ctx.config
    payload, warnings = setup_run(ctx, resume)
    stage_name = ctx.stages[min(ctx.stage_index, len(ctx.stages) - 1)].name
    device = describe(ctx.device) + (f", {ctx.threads_note}" if ctx.threads_note else "")
    yield Started(
        step=ctx.step, device=device, method=cfg.method, phase=stage_name,
        config=cfg.to_dict(), total_steps=cfg.steps,
    )
    for kind, warning in warnings:
        yield WarningEvent(ctx.step, warning, kind=kind)
    yield plan_event(ctx)

    if payload is not None:
        load_stage_segmenter(ctx)
    while ctx.stage_index < len(ctx.stages):
        stage = ctx.stages[ctx.stage_index]
        if ctx.step == ctx.stage_start_step and ctx.stage_elapsed == 0.0:
            # Each stage draws from its own seed, not from what the stages before it drew: a
            # run killed after prior.pt was written resumes by loading the prior (no init, no
            # draws), and must still train on exactly as the uninterrupted run did.
            ctx.reseed(ctx.seed + STAGE_SEED_STRIDE * (ctx.stage_index + 1))
        stage = timed(ctx, stage)
        yield PhaseChanged(ctx.step, stage.name)
        reached = {"step": ctx.step}  # the last step the stage reported
        try:
            yield from with_run_eta(ctx, logging_losses(
                ctx, stage, reporting_step(reached, STAGE_KINDS[stage.kind](ctx, stage))))
        except Exception as exc:
            if not can_drop(ctx, stage, exc):
                raise
            if stage.kind != "gan":  # a dropped stage is not redone: the count goes on past it
                ctx.end_stage(reached["step"])
            yield from drop_stage(ctx, stage, exc)
            continue
        if distributed.stop_agreed(ctx.control):
            yield ctx.checkpoint(good=False)  # a non-GAN stage is redone from its start step
            yield Finished(ctx.step, str(ctx.run_dir), stopped=True, summary=ctx.summary())
            return
        if stage.kind != "gan":
            ctx.end_stage(stage_end_step(ctx, stage, reached["step"]))
        ctx.stage_index += 1
        ctx.stage_elapsed = 0.0
        ctx.stage_start_step = ctx.step
        yield ctx.checkpoint(good=healthy_now(ctx))
    prior_is_the_segmenter(ctx)
    yield Finished(ctx.step, str(ctx.run_dir), stopped=False, summary=ctx.summary())


def stage_end_step(ctx: StageContext, stage: Stage, reported: int) -> int:
    """The global step after a finished non-GAN stage (the GAN stage counts its own steps).

    A fit or the encoder reports its global step (its start step plus its own steps). In
    ``--steps`` mode the plan fixes the count (``fit_steps``), which is what the stage ran, also
    when a resumed bootstrap reuses ``prior.pt`` and trains nothing: a killed and resumed run
    then numbers its steps exactly as the uninterrupted one.
    """
    if ctx.config.steps is not None and stage.fit_steps is not None:
        return ctx.step + stage.fit_steps
    return reported


def prior_is_the_segmenter(ctx: StageContext) -> None:
    """A plan of the bootstrap alone (a budget too short for anything after it) ends with the
    prior as the run's ``segmenter.pt``: no later stage writes one."""
    if [s.kind for s in ctx.stages] == ["bootstrap"] and ctx.prior is not None and distributed.is_main():
        ctx.folder.write_segmenter(ctx.prior, ctx.config.size, ctx.config.method,
                                   Path(ctx.config.folder).name)


def timed(ctx: StageContext, stage: Stage) -> Stage:
    """In ``--minutes`` mode, the stage with its share of the run's real time left (the plan's
    budgets are proportions; ``stage_seconds``): what earlier stages overran or left unused is
    taken from or given to this one and the stages after it."""
    if ctx.config.minutes is None or stage.budget_s is None:
        return stage
    share = stage_seconds(ctx.config.minutes * 60, ctx.clock.elapsed_s(),
                          ctx.stages[ctx.stage_index:])
    stage = replace(stage, budget_s=ctx.stage_elapsed + share)
    ctx.stages[ctx.stage_index] = stage
    return stage


def plan_event(ctx: StageContext) -> PlanMade:
    """The plan said up front (and logged in metrics.jsonl): stages, minutes or steps, and why
    the GAN is left out when it is. Minutes are the shares of the real time left now."""
    left = ctx.stages[ctx.stage_index:]
    if ctx.config.minutes is not None:
        left = _shares(ctx.config.minutes * 60, ctx.clock.elapsed_s(), left)
    rows = describe_plan(left)
    gan_planned = any(s.kind == "gan" for s in ctx.stages)
    note = "" if gan_planned else gan_decision(ctx.config, ctx.measured)[1]
    if not gan_planned and ctx.measured is not None and (why := rounds_note(ctx.measured)):
        note = f"{note}; {why}" if note else why
    if ctx.dropped:
        note = f"dropped after failing: {', '.join(ctx.dropped)}"
    record = {"step": ctx.step, "event": "plan", "stages": rows, "note": note}
    if ctx.measured is not None:  # what the plan was built from: this machine's rates
        record["rates"] = {**ctx.measured.to_record(),
                           "available_s": round(ctx.measured.available_s, 1)}
    ctx.metrics.append(record)
    return PlanMade(ctx.step, rows, note)


def _shares(total_s: float, elapsed_s: float, stages: list[Stage]) -> list[Stage]:
    """Every remaining stage with the seconds it gets if each before it uses exactly its own."""
    out, spent = [], elapsed_s
    for k, s in enumerate(stages):
        if s.budget_s is None:
            out.append(s)
            continue
        share = stage_seconds(total_s, spent, stages[k:])
        out.append(replace(s, budget_s=share))
        spent += share
    return out


def can_drop(ctx: StageContext, stage: Stage, exc: Exception) -> bool:
    """Whether a failed stage can be left out and the run carry on: an optional stage (GAN,
    encoder) that failed in training (not on bad input or a full disk), with a segmenter at hand
    and a later segmenter stage or a written ``segmenter.pt`` to end with."""
    if stage.kind not in OPTIONAL_KINDS or isinstance(exc, (InputError, DiskFullError, CheckpointError)):
        return False
    if ctx.segmenter is None:
        return False
    later = any(s.kind == "segmenter" for s in ctx.stages[ctx.stage_index + 1:])
    return later or ctx.folder.segmenter_path.exists()


def drop_stage(ctx: StageContext, stage: Stage, exc: Exception) -> Generator[Event, None, None]:
    """Warn, leave the failed stage (and the later GAN stages) out, give their time to the rest."""
    if not isinstance(exc, RunError):
        log.error("stage %s failed; dropped", stage.name, exc_info=exc)
    freed = max(0.0, (stage.budget_s or 0.0) - ctx.stage_elapsed)
    names = ctx.drop_from(ctx.stage_index, freed)
    rest = ", ".join(s.name for s in ctx.stages[ctx.stage_index:]) or "nothing"
    message = (f"{stage.name} failed ({exc}); dropped {', '.join(names)} and carried on with "
               f"{rest}: the segmenter learns from your photos labelled by the prior")
    log.warning(message)
    ctx.metrics.append({"step": ctx.step, "event": "dropped", "stages": names, "reason": str(exc)})
    yield WarningEvent(ctx.step, message, kind="dropped")
    ctx.stage_elapsed = 0.0
    ctx.stage_start_step = ctx.step
    if distributed.is_main():
        ckpt.drop_after(ctx.run_dir, ctx.step)  # the abandoned GAN's later checkpoints
    yield ctx.checkpoint(good=False)
    yield plan_event(ctx)
