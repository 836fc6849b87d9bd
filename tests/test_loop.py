"""The one step loop: a Budget whose clock excludes pauses, and run_steps' cadence and stop."""

from __future__ import annotations

import threading
import time

import pytest

from engine.control import RunControl
from engine.events import Losses, Progress
from engine.loop import Budget, run_steps


def test_budget_clock_excludes_pauses_and_says_where_it_stands():
    budget = Budget(seconds=10.0)
    budget.start()
    time.sleep(0.05)
    budget.pause()
    time.sleep(0.2)  # held: does not count
    held = budget.elapsed_s
    assert 0.04 <= held < 0.15
    budget.resume()
    budget.step_done(5)
    assert budget.fraction() == pytest.approx(budget.elapsed_s / 10.0, abs=0.01)
    assert budget.remaining_s() == pytest.approx(10.0 - budget.elapsed_s, abs=0.01)
    assert budget.eta_s() == pytest.approx(budget.remaining_s(), abs=0.01)
    steps = Budget.resumed(None, 8, done=2, elapsed_s=1.0)
    assert steps.fraction() == 0.25 and steps.remaining_s() is None
    assert steps.eta_s() == pytest.approx(6 / 2.0, rel=0.05)  # 2 steps per training second
    with pytest.raises(ValueError):
        Budget()


def test_run_steps_reports_averages_at_its_cadence_and_counts_global_steps():
    seen = []
    events = list(run_steps(lambda frac: seen.append(frac) or {"loss": float(len(seen))},
                            Budget(steps=6), RunControl(), "fit", 100, report_every=3))
    losses = [e for e in events if isinstance(e, Losses)]
    # At multiples of 3 of the *global* step, and at the end; each the mean since the last one.
    assert [(e.step, e.values["loss"]) for e in losses] == [(102, 1.5), (105, 4.0), (106, 6.0)]
    assert seen[0] == 0.0 and seen[-1] == pytest.approx(5 / 6)  # the schedule's fraction
    fractions = [e.fraction for e in events if isinstance(e, Progress)]
    assert fractions == pytest.approx([2 / 6, 5 / 6, 1.0])


def test_run_steps_holds_while_paused_and_stops_at_a_step_boundary():
    control = RunControl()
    control.pause()
    steps = []
    events = run_steps(lambda frac: steps.append(1) or {}, Budget(steps=1000), control, "x", 0)
    worker = threading.Thread(target=lambda: list(events))
    worker.start()
    time.sleep(0.2)
    assert steps == []  # held before the first step
    control.stop()
    worker.join(timeout=5)
    assert not worker.is_alive() and steps == []
