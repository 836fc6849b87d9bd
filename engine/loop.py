"""The one step loop: a ``Budget`` (minutes or steps, a clock that excludes pauses) and
``run_steps``, which drives a step function under it and reports at one cadence.

Before this module each trainer (the UNet fit, PerturbGAN's encoder, the latent-direction search,
...) had its own budget clock, pause clock, fraction, ETA and reporting cadence, and they drifted
apart. Now a loop is "a step function + a Budget": ``run_steps`` honours pause / stop at step
boundaries (under torchrun all ranks agree), judges the budget on rank 0's clock, and yields
averaged ``Losses`` and a ``Progress`` every ``report_every_s`` seconds and at the end.

``Budget`` is a deadline that can be asked where it stands (``remaining_s``, ``fraction``,
``eta_s``), pauses excluded, so that a planner can share a run's time between its stages.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.control import RunControl
from engine.events import Event, Losses, Progress
from engine.parallel import distributed

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

REPORT_EVERY_S = 1.0


@dataclass
class Budget:
    """At most ``seconds`` of training time or ``steps`` steps (either or both; at least one).

    ``elapsed_s`` counts training time only: ``pause()`` / ``resume()`` bracket the time a run
    is held, which never counts. ``done`` counts steps taken under this budget.
    """

    seconds: float | None = None
    steps: int | None = None
    done: int = 0
    _spent: float = 0.0  # training seconds before the current running stretch
    _since: float | None = field(default=None, repr=False)  # start of the running stretch

    def __post_init__(self) -> None:
        if self.seconds is None and self.steps is None:
            raise ValueError("a budget needs a time limit, a step count, or both")

    @classmethod
    def resumed(cls, seconds: float | None, steps: int | None, done: int,
                elapsed_s: float) -> Budget:
        """A budget already partly used: a resumed run continues its clock and step count."""
        return cls(seconds, steps, done=done, _spent=elapsed_s)

    def start(self) -> None:
        if self._since is None:
            self._since = time.perf_counter()

    def pause(self) -> None:
        if self._since is not None:
            self._spent += time.perf_counter() - self._since
            self._since = None

    resume = start

    @property
    def elapsed_s(self) -> float:
        running = time.perf_counter() - self._since if self._since is not None else 0.0
        return self._spent + running

    def step_done(self, n: int = 1) -> None:
        self.done += n

    @property
    def rate(self) -> float:
        """Steps per training second so far (0 before the first step)."""
        elapsed = self.elapsed_s
        return self.done / elapsed if elapsed > 0 else 0.0

    def fraction(self) -> float:
        """How much of the budget is used, in [0, 1]: the larger of the time and step shares."""
        parts = []
        if self.seconds is not None:
            parts.append(self.elapsed_s / self.seconds if self.seconds > 0 else 1.0)
        if self.steps is not None:
            parts.append(self.done / self.steps if self.steps > 0 else 1.0)
        return min(1.0, max(parts))

    def remaining_s(self) -> float | None:
        """Training seconds left under the time limit; None for a step budget."""
        return None if self.seconds is None else max(0.0, self.seconds - self.elapsed_s)

    def eta_s(self) -> float | None:
        """Expected training seconds to the end (pauses excluded); None before any rate."""
        etas = []
        if self.seconds is not None:
            etas.append(max(0.0, self.seconds - self.elapsed_s))
        rate = self.rate
        if self.steps is not None and rate > 0:
            etas.append(max(0, self.steps - self.done) / rate)
        return min(etas) if etas else None

    def spent(self) -> bool:
        """Whether the budget is used up, as rank 0 judges it (every rank gets the same answer)."""
        return distributed.main_value(self.fraction()) >= 1.0


class RunClock:
    """A whole run's wall clock, pauses excluded: setup, GrabCut, relabelling, pair filtering,
    checkpoint writes and every step count against it (a stage's own ``Budget`` sees only its
    steps). ``before_s`` is what a resumed run had already spent."""

    def __init__(self, control: RunControl, before_s: float = 0.0) -> None:
        self._control = control
        self._t0 = time.perf_counter()
        self._held0 = getattr(control, "held_s", 0.0)
        self.before_s = before_s

    def elapsed_s(self) -> float:
        held = getattr(self._control, "held_s", 0.0) - self._held0
        return self.before_s + time.perf_counter() - self._t0 - held


def sync_device() -> None:
    """Wait for the GPU's queued work, so that a clock read next counts it (CUDA runs ahead of
    the host: without this a budget is judged on launch times, not on the work done)."""
    import sys

    torch = sys.modules.get("torch")  # the loop itself never needs torch: only sync if loaded
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


# The loop syncs the device before judging the budget at most this often: a sync per step would
# cost the overlap of host and GPU work; the queued work between syncs is a few steps at most.
SYNC_EVERY_S = 0.5


# A step's losses: floats, or detached scalar tensors turned into floats only when reported
# (reading a CUDA tensor on the host waits for the GPU, so per-step floats would stall it).
StepFn = Callable[[float], "dict[str, float | torch.Tensor]"]
OnReport = Callable[[int, dict[str, float]], Generator[Event, None, bool]]
AfterStep = Callable[[int], Generator[Event, None, bool]]


def run_steps(
    step_fn: StepFn,
    budget: Budget,
    control: RunControl,
    phase: str,
    step0: int,
    report_every_s: float = REPORT_EVERY_S,
    *,
    report_every: int | None = None,
    average: bool = True,
    on_report: OnReport | None = None,
    after_step: AfterStep | None = None,
    own_count: bool = False,
) -> Generator[Event, None, int]:
    """Call ``step_fn(fraction)`` until the budget is spent or a stop is agreed.

    ``fraction`` is the budget's share used before the step (for schedules such as a cosine
    learning rate). ``step_fn`` returns the step's losses as floats or scalar tensors; their averages since the last
    report go out as ``Losses``, with a ``Progress``, at the global step ``step0 + budget.done``:
    every ``report_every_s`` training seconds, or with ``report_every`` at each multiple of that
    many global steps, and when the budget is spent; without ``average`` the reported values are
    the last step's. ``on_report(step, values)`` runs after each report (a trainer's metrics log,
    its guard). ``after_step(step)`` runs after every step (previews, checkpoints, a restart
    rule). Both may change ``budget.done`` (a restart, a restored checkpoint) and return True when
    they did: the values gathered so far are dropped and, after ``on_report``, ``after_step`` is
    skipped for that step. With ``own_count`` the ``Progress`` also says the stage's own steps
    (``done`` of ``total``): a fit shows how far it is through its own steps beside the run's
    global step.
    Returns the number of steps taken under the budget.
    """
    sums: dict[str, Any] = {}
    last: dict[str, Any] = {}
    n_sum = 0
    last_report = budget.elapsed_s
    budget.start()

    def due() -> bool:
        if budget.spent():  # rank 0's answer: every rank reports (and runs on_report) alike
            return True
        if report_every is not None:
            return (step0 + budget.done) % report_every == 0
        return budget.elapsed_s - last_report >= report_every_s

    def report() -> Generator[Event, None, bool]:
        nonlocal sums, n_sum, last_report
        step = step0 + budget.done
        values = {k: float(v) / n_sum for k, v in sums.items()} if average else {
            k: float(v) for k, v in last.items()}
        yield Losses(step=step, phase=phase, values=values)
        yield Progress(step=step, phase=phase, steps_per_s=budget.rate,
                       elapsed_s=budget.elapsed_s, eta_s=budget.eta_s(),
                       fraction=budget.fraction(),
                       done=budget.done if own_count else None,
                       total=budget.steps if own_count else None)
        sums, n_sum, last_report = {}, 0, budget.elapsed_s
        if on_report is not None:
            return (yield from on_report(step, values))
        return False

    synced = time.perf_counter()
    try:
        while True:
            if budget.seconds is not None and time.perf_counter() - synced >= SYNC_EVERY_S:
                sync_device()
                synced = time.perf_counter()
            frac = distributed.main_value(budget.fraction())
            if frac >= 1.0:
                break
            if control.paused:
                log.info("%s: paused", phase)
                budget.pause()
                control.wait_if_paused()
                budget.resume()
            if distributed.stop_agreed(control):
                log.info("%s: stop requested after %d steps", phase, budget.done)
                break
            last = step_fn(frac)
            budget.step_done()
            for k, v in last.items():
                sums[k] = sums.get(k, 0.0) + v
            n_sum += 1
            if due() and (yield from report()):
                sums, n_sum = {}, 0
                continue
            if after_step is not None and (yield from after_step(step0 + budget.done)):
                sums, n_sum = {}, 0
        if n_sum and report_every is None:  # stopped between reports: still show where it ended
            yield from report()
    finally:
        if budget.seconds is not None:
            sync_device()  # the stage's last steps count in its time, not the next stage's
        budget.pause()
    log.info("%s: %d steps in %.1f s", phase, budget.done, budget.elapsed_s)
    return budget.done
