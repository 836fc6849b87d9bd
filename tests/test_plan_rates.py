"""Issue #16: the plan follows this machine's measured rates (pure: rates in, plan out), says
"about N minutes here; you gave M" below what a segmenter better than GrabCut needs, and the
probe that measures the rates is paid out of the run's budget."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest
from train_helpers import run_all, tiny_config

from engine.config import PipelineConfig
from engine.describe import describe
from engine.events import Finished, PlanMade, WarningEvent
from engine.train.plan import (
    GAN_MIN_STEPS,
    MIN_SELF_TRAIN_STEPS,
    PRIOR_STEPS,
    SELF_TRAIN_STEPS,
    Measured,
    Rates,
    available_seconds,
    estimate_line,
    gan_decision,
    needed_minutes,
    needed_work_s,
    plan_stages,
)
from engine.train.rates import rates_from

HORSES_HERE = Rates(grabcut_s=0.4, fit_step_s=0.15, gan_step_s=0.35)  # one busy CPU core
PIPE = PipelineConfig(rounds=1)


def config(tmp_path, minutes: float, pipe: PipelineConfig = PIPE):
    return tiny_config(tmp_path, tmp_path / "run", steps=None, minutes=minutes, pipeline=pipe)


def test_a_budget_that_holds_the_needed_work_grabcuts_every_photo_and_fits_its_steps(tmp_path):
    need = needed_work_s(200, HORSES_HERE)
    stages = plan_stages(config(tmp_path, 5), Measured(HORSES_HERE, 200, need))
    assert [s.name for s in stages] == ["bootstrap", "segmenter"]
    assert stages[0].photos is None  # every photo
    assert stages[0].expected_steps == PRIOR_STEPS and stages[1].expected_steps == SELF_TRAIN_STEPS
    assert abs(sum(s.budget_s for s in stages) - need) < 1e-6
    # GrabCut's share of a stage is its planned seconds with a margin, never over 0.8 (the fit
    # is what a stage is for): 80 s of the bootstrap's 110 here
    assert stages[0].grabcut_share == 0.8
    assert stages[1].grabcut_share == pytest.approx(1.15 * 80 / (80 + SELF_TRAIN_STEPS * 0.15))
    demo = Rates(0.04, 0.14)
    quick = plan_stages(config(tmp_path, 5), Measured(demo, 200, needed_work_s(200, demo)))
    assert quick[1].grabcut_share == pytest.approx(1.15 * 8 / (8 + SELF_TRAIN_STEPS * 0.14))


def test_more_time_buys_a_round_then_longer_fits(tmp_path):
    full_seg = 200 * 0.4 + SELF_TRAIN_STEPS * 0.15
    t = needed_work_s(200, HORSES_HERE) + full_seg + 60
    stages = plan_stages(config(tmp_path, 9), Measured(HORSES_HERE, 200, t))
    assert [s.name for s in stages] == ["bootstrap", "segmenter", "round-1-segmenter"]
    assert stages[0].expected_steps > PRIOR_STEPS and stages[2].expected_steps > SELF_TRAIN_STEPS
    assert abs(sum(s.budget_s for s in stages) - t) < 1e-6


def test_a_short_budget_grabcuts_a_sample_so_the_fits_keep_their_steps(tmp_path):
    t = 200.0  # M = 3.5 on the horses here: the needed work is 250 s
    stages = plan_stages(config(tmp_path, 3.5), Measured(HORSES_HERE, 200, t))
    assert [s.name for s in stages] == ["bootstrap", "segmenter"]
    n = stages[0].photos
    assert 64 <= n < 200 and n == int((t - (PRIOR_STEPS + SELF_TRAIN_STEPS) * 0.15) // 0.8)
    assert stages[0].expected_steps == PRIOR_STEPS
    assert SELF_TRAIN_STEPS <= stages[1].expected_steps <= SELF_TRAIN_STEPS + 3  # the photo's rest
    assert sum(s.budget_s for s in stages) == pytest.approx(t)


def test_shorter_still_the_round_gets_what_the_prior_leaves(tmp_path):
    t = 110.0  # M = 2: 64 photos, the prior's steps, a round of what is left
    stages = plan_stages(config(tmp_path, 2), Measured(HORSES_HERE, 200, t))
    assert [(s.name, s.photos) for s in stages] == [("bootstrap", 64), ("segmenter", None)]
    assert stages[0].expected_steps == PRIOR_STEPS
    assert MIN_SELF_TRAIN_STEPS <= stages[1].expected_steps == int((t - 2 * 64 * 0.4) / 0.15) - 200
    assert abs(sum(s.budget_s for s in stages) - t) < 1e-6


def test_a_tiny_budget_gives_the_prior_everything(tmp_path):
    stages = plan_stages(config(tmp_path, 1), Measured(HORSES_HERE, 200, 50.0))
    assert [s.name for s in stages] == ["bootstrap"]
    assert stages[0].photos == 62  # GrabCut at most half of it: 25 s at 0.4 s a photo
    assert stages[0].expected_steps == int((50 - 62 * 0.4) / 0.15)


def test_where_grabcut_is_cheap_a_short_budget_grabcuts_more_photos_not_just_the_smallest_sample(
        tmp_path):
    # At 1 and 2 minutes the plans GrabCut-ed 64 of the demo's 200 photos though all 200 cost
    # 6 s here: the prior fitted on more photos scored higher in the same seconds.
    demo = Rates(grabcut_s=0.03, fit_step_s=0.4)
    for t in (54.0, 113.0):
        stages = plan_stages(config(tmp_path, 2), Measured(demo, 200, t))
        assert [(s.name, s.photos) for s in stages] == [("bootstrap", 200)]
        assert sum(s.budget_s for s in stages) == pytest.approx(t)
    # A slower GrabCut: its share of a short budget, at least the smallest sample.
    horses = Rates(grabcut_s=0.2, fit_step_s=0.4)
    one, two = (plan_stages(config(tmp_path, 2), Measured(horses, 200, t))[0] for t in (50.0, 113.0))
    assert one.photos == 75 and two.photos == int(0.3 * 113 / 0.2)
    assert one.expected_steps == int((50 - 75 * 0.2) / 0.4)
    # Where the prior is the whole plan (no rounds on these colours), its photos never fall as
    # the budget grows.
    counts = [plan_stages(config(tmp_path, 9), Measured(horses, 200, t, 0.9))[0].photos or 200
              for t in range(40, 600, 10)]
    assert counts == sorted(counts) and counts[0] == 64 and counts[-1] == 200


def test_a_faster_machine_gets_the_gan_a_slower_one_does_not(tmp_path):
    cfg = config(tmp_path, 20)
    slow = Measured(HORSES_HERE, 200, 20 * 60 - 15)
    use, note = gan_decision(cfg, slow)
    assert not use and f"{GAN_MIN_STEPS} steps" in note and "about 35 min here" in note
    assert "gan" not in [s.kind for s in plan_stages(cfg, slow)]
    fast = Measured(Rates(0.05, 0.02, 0.02), 200, 20 * 60 - 15)
    stages = plan_stages(cfg, fast)
    assert gan_decision(cfg, fast) == (True, "") and "gan" in [s.kind for s in stages]
    by_name = {s.name: s for s in stages}
    # the GAN plan still gives the prior and the first fit what they need
    assert by_name["bootstrap"].expected_steps >= PRIOR_STEPS
    assert by_name["segmenter"].expected_steps >= SELF_TRAIN_STEPS
    assert by_name["gan"].expected_steps == int(by_name["gan"].budget_s / 0.02)
    assert abs(sum(s.budget_s for s in stages) - (20 * 60 - 15)) < 1e-6


def test_compare_keeps_the_gan_and_its_share_at_any_budget(tmp_path):
    """min_gan_minutes = 0 (compare, latentdir): the GAN's share is not given to the segmenter."""
    cfg = config(tmp_path, 0.5, replace(PIPE, min_gan_minutes=0.0))
    measured = Measured(HORSES_HERE, 200, 25.0)
    assert plan_stages(cfg, measured) == plan_stages(cfg)
    assert "gan" in [s.kind for s in plan_stages(cfg, measured)]


def test_steps_mode_ignores_any_timing(tmp_path):
    cfg = tiny_config(tmp_path, tmp_path / "run", steps=20, pipeline=PIPE)
    measured = Measured(HORSES_HERE, 200, 30.0)
    assert plan_stages(cfg, measured) == plan_stages(cfg)
    assert all(s.expected_steps is None and s.budget_s is None for s in plan_stages(cfg, measured))


def test_the_estimate_line_says_the_minutes_needed_here_when_given_less():
    need = needed_minutes(200, HORSES_HERE)
    assert 4 < need < 5  # 250 s of work + start-up
    line = estimate_line(200, HORSES_HERE, 2)
    assert line is not None and line.startswith("about 4.5 minutes here") and "you gave 2" in line
    assert estimate_line(200, HORSES_HERE, 5) is None
    fast = Rates(0.04, 0.14)  # the demo's photos GrabCut ten times faster
    assert estimate_line(200, fast, 2) is None and "you gave 1.5" in estimate_line(200, fast, 1.5)


def test_the_run_plans_from_its_probe_says_the_estimate_and_pays_for_the_probe(
        tiny_demo_folder, tmp_path, monkeypatch):
    """The probe's seconds come out of the budget: the plan shares what is left after it."""
    from engine.train import rates

    slow_grabcut = Rates(grabcut_s=3.0, fit_step_s=0.05)

    def slow_probe(cache, mask_dir, photos=2):
        time.sleep(8.0)
        return slow_grabcut.grabcut_s

    monkeypatch.setattr(rates, "time_grabcut", slow_probe)
    monkeypatch.setattr(rates, "time_fit_step", lambda size, device: slow_grabcut.fit_step_s)
    cfg = config(tiny_demo_folder, 0.5, replace(PIPE, segmenter_batch=4))
    cfg = replace(cfg, out=str(tmp_path / "run"))
    events = run_all(cfg)
    assert isinstance(events[-1], Finished)
    estimate = [e for e in events if isinstance(e, WarningEvent) and e.kind == "estimate"]
    assert len(estimate) == 1 and "you gave 0.5" in estimate[0].message
    plan = [e for e in events if isinstance(e, PlanMade)][0]
    # The plan was made for the time left after the probe: the prior alone (a tiny budget), its
    # steps and photos bought with what remained of the 30 s after the probe's 8 (and setup's)
    [row] = plan.stages
    assert row["stage"] == "bootstrap"
    planned_s = row["expected_steps"] * slow_grabcut.fit_step_s + row["photos"] * slow_grabcut.grabcut_s
    assert 5 < planned_s <= available_seconds(30, 8.0) + slow_grabcut.fit_step_s
    assert "steps" in describe(plan)  # expected steps from the rates
    assert "leaves too little for its" in plan.note  # the GAN left out, by the rates
    assert (tmp_path / "run" / "segmenter.pt").exists()
    logged = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    [plan_record] = [x for x in logged if x.get("event") == "plan"]
    assert plan_record["rates"]["grabcut_s"] == 3.0 and plan_record["rates"]["photos"] == 12
    # the machine's rates are kept for the app's estimate
    assert rates.load_rates("cpu", 32) == slow_grabcut


def test_a_resumed_run_plans_with_the_rates_it_was_planned_with(tmp_path):
    """The rates, photo count and time the plan was made from travel in the checkpoint: a
    resume (which measures nothing) rebuilds the same plan, whatever the machine does now."""
    from engine.control import RunControl
    from engine.train.context import StageContext
    from engine.train.setup import saved_measure

    class NoMethod:
        def state_dict(self):
            return {}

    ctx = StageContext(config(tmp_path, 2), RunControl())
    ctx.method = NoMethod()  # type: ignore[assignment]
    ctx.measured = Measured(HORSES_HERE, 200, 110.0)
    ctx.stages = plan_stages(ctx.config, ctx.measured)
    payload = ctx.to_payload()
    assert saved_measure(payload) == ctx.measured
    assert plan_stages(ctx.config, saved_measure(payload)) == ctx.stages
    ctx.measured = None  # a run planned by fixed shares resumes by them
    assert saved_measure(ctx.to_payload()) is None


def test_the_gan_runs_only_when_its_planned_stages_get_the_steps_it_asks_for(tmp_path):
    """The gate once counted the time left before the shares: on the demo at 10 minutes (these
    rates, measured by that run) it let the GAN in, then the shares gave it ~1,667 of its 3,000
    steps, and the run scored 0.920 against the GAN-free 5 minutes' 0.927."""
    from engine.train.plan import planned_gan_steps

    cfg = config(tmp_path, 10)
    demo = Measured(Rates(grabcut_s=0.0464, fit_step_s=0.1404, gan_step_s=0.1563), 200, 589.6)
    assert available_seconds_left_for_gan(demo) >= 3000 * 0.1563  # the old gate (3,000) passed
    assert planned_gan_steps(cfg, demo) < 3000 <= GAN_MIN_STEPS
    use, note = gan_decision(cfg, demo)
    assert not use and f"{GAN_MIN_STEPS} steps" in note
    assert "gan" not in [s.kind for s in plan_stages(cfg, demo)]


def available_seconds_left_for_gan(measured: Measured) -> float:
    return measured.available_s - needed_work_s(measured.photos, measured.rates)


def test_the_prior_says_the_steps_its_coarse_phase_buys_in_the_same_time(tmp_path):
    """Its fit spends half its time on half-size steps (cheaper): the plan gives it the time of
    its full-size steps and says how many steps that is; the rates keep the coarse step."""
    coarse = replace(HORSES_HERE, coarse_step_s=0.05)
    need = needed_work_s(200, coarse)
    plain = plan_stages(config(tmp_path, 5), Measured(HORSES_HERE, 200, need))
    stages = plan_stages(config(tmp_path, 5), Measured(coarse, 200, need))
    assert [s.budget_s for s in stages] == [s.budget_s for s in plain]
    # the prior's 30 s of fitting: 15 s at 0.05 s a step, 15 s at 0.15
    assert abs(stages[0].expected_steps - (15 / 0.05 + 15 / 0.15)) <= 1
    assert stages[1].expected_steps == plain[1].expected_steps == SELF_TRAIN_STEPS
    assert rates_from(Measured(coarse, 200, need).to_record()) == coarse
    assert rates_from({"grabcut_s": 0.4, "fit_step_s": 0.15}) == Rates(0.4, 0.15)  # older record


def test_the_gan_probe_times_the_step_with_the_priors_background_loss(tmp_path, monkeypatch):
    """After the bootstrap every G step also runs the frozen prior on the backgrounds (L_bg);
    timed without it the probe said 0.51 s a step where the stage stepped at 0.85 s, and the plan
    gave the GAN 1,800 of the 3,000 steps its gate asks for."""
    import torch

    from engine.methods.base import LayeredGan
    from engine.train.rates import time_gan_step

    calls = {"with": 0}
    real_loss = LayeredGan.bg_prior_loss

    def counting(self, background):
        out = real_loss(self, background)
        calls["with"] += out is not None
        return out

    monkeypatch.setattr(LayeredGan, "bg_prior_loss", counting)
    cfg = tiny_config(tmp_path, tmp_path / "run", method="perturbgan",
                      pipeline=PipelineConfig(bootstrap=True))
    real = torch.rand(4, 3, 32, 32) * 2 - 1
    assert time_gan_step(cfg, torch.device("cpu"), real) > 0
    assert calls["with"] == 2  # the warm-up step and the timed one, both with L_bg
    calls["with"] = 0
    time_gan_step(replace(cfg, pipeline=PipelineConfig(bootstrap=False)), torch.device("cpu"), real)
    assert calls["with"] == 0  # no prior, no L_bg: the GAN stages have none either
