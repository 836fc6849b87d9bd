"""The wrappers a stage's events pass through on their way out of the runner.

Each takes a stage's event generator and yields the same events, noting or adding one thing:
the highest step reached (for the global step count), the run's wall-time ETA on progress, and
the losses of non-GAN stages written to ``metrics.jsonl``.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace

from engine.events import Event, Losses, Progress
from engine.train.context import StageContext
from engine.train.plan import Stage


def reporting_step(reached: dict[str, int],
                   events: Generator[Event, None, None]) -> Generator[Event, None, None]:
    """A stage's events, ``reached["step"]`` following the highest step among them."""
    for ev in events:
        reached["step"] = max(reached["step"], ev.step)
        yield ev


def with_run_eta(ctx: StageContext, events: Generator[Event, None, None]) -> Generator[Event, None, None]:
    """A stage's events, its progress also saying the wall time left to the run's deadline
    (``--minutes``: the deadline holds, so that is when ``segmenter.pt`` is final)."""
    total = ctx.config.minutes * 60 if ctx.config.minutes is not None else None
    for ev in events:
        if total is not None and isinstance(ev, Progress):
            ev = replace(ev, run_eta_s=max(0.0, total - ctx.clock.elapsed_s()))
        yield ev


def logging_losses(ctx: StageContext, stage: Stage,
                   events: Generator[Event, None, None]) -> Generator[Event, None, None]:
    """A stage's events, the losses of a non-GAN stage (prior, segmenter fits, encoder) also
    written to ``metrics.jsonl`` (rank 0 only: ``ctx.metrics``), so an opened run plots every
    stage's curves; the GAN stage logs its own, with its mask statistics (``gan_stage.guard``)."""
    for ev in events:
        if stage.kind != "gan" and isinstance(ev, Losses):
            ctx.metrics.append({"step": ev.step, "phase": ev.phase, **ev.values})
        yield ev
