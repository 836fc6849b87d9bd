"""Issue #16: short runs that are worth it. A failed GAN never costs the run; without the GAN
(asked, or a budget too small for it) the prior and self-training still end with a segmenter."""

from __future__ import annotations

import json
from dataclasses import replace

from train_helpers import run_all, tiny_config

from engine.config import GuardConfig, PipelineConfig
from engine.describe import describe
from engine.events import Failed, Finished, PhaseChanged, PlanMade, Progress, WarningEvent
from engine.segmenter.model import load_segmenter
from engine.train import gan_stage
from engine.train.collapse import MaskStats
from engine.train.plan import Stage, drop_optional, plan_stages

PIPE = PipelineConfig(bootstrap=True, segmenter=True, rounds=1, segmenter_steps=2,
                      segmenter_batch=4, round_gan_fraction=0.5)


def phases_of(events: list) -> list[str]:
    phases = [e.phase for e in events if isinstance(e, PhaseChanged)]
    return [p for i, p in enumerate(phases) if p not in phases[:i]]


def test_a_gan_that_collapses_every_time_still_ends_with_a_segmenter(
        tiny_demo_folder, tmp_path, monkeypatch):
    monkeypatch.setattr(gan_stage, "stats_of", lambda method, codes: MaskStats(0.0, 1.0, 0.0, 0.0))
    cfg = tiny_config(tiny_demo_folder, tmp_path / "run", steps=20, pipeline=PIPE,
                      guard=GuardConfig(grace_steps=0, max_restarts=1))
    events = run_all(cfg)
    assert not [e for e in events if isinstance(e, Failed)]
    dropped = [e for e in events if isinstance(e, WarningEvent) and e.kind == "dropped"]
    assert len(dropped) == 1 and "dropped gan, round-1-gan" in dropped[0].message
    assert phases_of(events) == ["bootstrap", "gan", "segmenter", "round-1-segmenter"]
    assert isinstance(events[-1], Finished) and events[-1].summary["dropped"] == ["gan", "round-1-gan"]
    assert "without gan, round-1-gan" in describe(events[-1])
    model, info = load_segmenter(tmp_path / "run" / "segmenter.pt")
    assert info.size == 32
    sources = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [s["gan_pairs"] for s in sources if s.get("event") == "segmenter-source"] == [False, False]


def test_a_resume_after_a_dropped_gan_keeps_it_dropped(tiny_demo_folder, tmp_path, monkeypatch):
    from engine.control import RunControl
    from engine.train.runner import train

    monkeypatch.setattr(gan_stage, "stats_of", lambda method, codes: MaskStats(0.0, 1.0, 0.0, 0.0))
    cfg = tiny_config(tiny_demo_folder, tmp_path / "run", steps=20, pipeline=PIPE,
                      guard=GuardConfig(grace_steps=0, max_restarts=1))
    control = RunControl()
    for ev in train(cfg, control):
        if isinstance(ev, PhaseChanged) and ev.phase == "segmenter":
            control.stop()
    events = run_all(cfg, resume=True)
    assert phases_of(events) == ["segmenter", "round-1-segmenter"]
    assert isinstance(events[-1], Finished) and events[-1].summary["dropped"] == ["gan", "round-1-gan"]


def test_no_gan_runs_the_prior_then_self_training(tiny_demo_folder, tmp_path):
    cfg = tiny_config(tiny_demo_folder, tmp_path / "run", steps=20,
                      pipeline=replace(PIPE, gan=False))
    events = run_all(cfg)
    assert phases_of(events) == ["bootstrap", "segmenter", "round-1-segmenter"]
    plan = [e for e in events if isinstance(e, PlanMade)]
    assert len(plan) == 1 and "no GAN (asked)" in describe(plan[0])
    logged = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    plans = [x for x in logged if x.get("event") == "plan"]
    assert len(plans) == 1 and [r["stage"] for r in plans[0]["stages"]] == [
        "bootstrap", "segmenter", "round-1-segmenter"]
    assert isinstance(events[-1], Finished) and events[-1].step == 6  # three 2-step fits, no GAN
    assert (tmp_path / "run" / "segmenter.pt").exists()


def test_the_plan_for_a_tiny_budget_drops_the_gan_and_says_so(tmp_path):
    from engine.train.plan import gan_decision

    cfg = tiny_config(tmp_path, tmp_path / "run", steps=None, minutes=0.5, pipeline=PIPE)
    stages = plan_stages(cfg)
    assert [s.kind for s in stages] == ["bootstrap", "segmenter", "segmenter"]
    assert abs(sum(s.budget_s for s in stages) - 30.0) < 1e-6
    use, note = gan_decision(cfg)
    assert not use and "0.5 min is under the 10 min" in note
    long = replace(cfg, minutes=30.0)
    assert "gan" in [s.kind for s in plan_stages(long)] and gan_decision(long) == (True, "")


def test_dropping_a_failed_stage_gives_its_time_to_the_rest():
    stages = [Stage("bootstrap", "bootstrap", 10.0, None), Stage("gan", "gan", 40.0, None),
              Stage("segmenter", "segmenter", 20.0, None),
              Stage("round-1-gan", "gan", 20.0, None),
              Stage("round-1-segmenter", "segmenter", 10.0, None)]
    new, names = drop_optional(stages, 1, freed_s=15.0)  # the GAN failed with 15 s left
    assert names == ["gan", "round-1-gan"]
    assert [s.name for s in new] == ["bootstrap", "segmenter", "round-1-segmenter"]
    assert abs(new[1].budget_s - 20.0 * (1 + 35 / 30)) < 1e-9
    assert abs(sum(s.budget_s for s in new[1:]) - (30 + 35)) < 1e-9


def test_steps_3_is_a_quick_run_without_the_gan_from_the_command_line(tiny_demo_folder, tmp_path, capsys):
    """--steps N scales every fit to about N steps (not pipeline.segmenter_steps = 400)."""
    import time

    from engine.cli.main import main

    t0 = time.perf_counter()
    code = main(["train", str(tiny_demo_folder), "--out", str(tmp_path / "run"), "--steps", "3",
                 "--size", "32", "--batch", "4", "--device", "cpu", "--threads", "1", "--no-gan"])
    took = time.perf_counter() - t0
    out = capsys.readouterr().out
    assert code == 0, out
    assert "plan: bootstrap 3 fit steps on up to 16 photos, segmenter 3 fit steps" in out
    assert "no GAN (asked)" in out and (tmp_path / "run" / "segmenter.pt").exists()
    assert took < 60


def test_no_gan_needs_the_prior(tmp_path, capsys):
    from engine.cli.main import main

    assert main(["train", str(tmp_path), "--out", str(tmp_path / "run"), "--steps", "3",
                 "--no-gan", "--no-bootstrap"]) == 2
    assert "needs the bootstrap prior" in capsys.readouterr().err


def test_the_app_option_turns_the_gan_off():
    from app.engine_calls import make_config

    opts = {"method": "perturbgan", "size": 32, "batch": 4, "device": "cpu", "bootstrap": True,
            "gan": False, "steps": 3}
    assert make_config("in", "out", opts).pipeline.gan is False
    assert make_config("in", "out", {**opts, "gan": True}).pipeline.gan is True


def test_a_half_minute_run_ends_within_its_budget_and_leaves_a_segmenter(
        tiny_demo_folder, tmp_path, monkeypatch):
    """Every piece of work (setup, GrabCut, relabelling, checkpoints, the GAN) counts against
    --minutes: the run ends within M x 1.05 + 15 s (the GAN kept in to exercise every stage),
    even where GrabCut's edge snapping is slow (2 s a photo: 24 s a stage on 12 photos)."""
    import time

    from engine.segmenter import relabel

    real = relabel.refine_centre

    def slow(task):
        time.sleep(2.0)
        return real(task)

    monkeypatch.setattr(relabel, "refine_centre", slow)

    pipe = replace(PipelineConfig(), segmenter_batch=4, min_gan_minutes=0.0)
    cfg = tiny_config(tiny_demo_folder, tmp_path / "run", steps=None, minutes=0.5, pipeline=pipe)
    t0 = time.perf_counter()
    events = run_all(cfg)
    took = time.perf_counter() - t0
    assert isinstance(events[-1], Finished), [e for e in events if isinstance(e, Failed)]
    assert phases_of(events) == ["bootstrap", "gan", "segmenter", "round-1-gan", "round-1-segmenter"]
    assert (tmp_path / "run" / "segmenter.pt").exists()
    assert took <= 0.5 * 60 * 1.05 + 15, took
    assert took >= 0.5 * 60 * 0.8, took  # and it used its budget
    etas = [e.run_eta_s for e in events if isinstance(e, Progress)]  # the real time left, shown
    assert etas and all(0 <= x <= 30 for x in etas) and etas[-1] < etas[0] - 10
    assert "run ends in" in describe([e for e in events if isinstance(e, Progress)][-1])


def test_each_stage_gets_its_share_of_the_real_time_left():
    from engine.train.plan import RESERVE_S, RESERVE_SHARE, stage_seconds

    stages = [Stage("a", "segmenter", 30.0, None), Stage("b", "segmenter", 10.0, None)]
    usable = 100.0 - RESERVE_S - RESERVE_SHARE * 100.0
    assert abs(stage_seconds(100.0, 0.0, stages) - usable * 0.75) < 1e-9
    # an earlier stage overran by 20 s: the later ones give it back
    assert abs(stage_seconds(100.0, 20.0, stages) - (usable - 20) * 0.75) < 1e-9
    assert stage_seconds(100.0, 200.0, stages) == 0.0  # past the deadline: hand over at once


def test_more_threads_only_when_timed_clearly_faster():
    from engine.train.threads import pick_threads

    assert pick_threads({1: 0.010, 2: 0.006}) == 2  # a quiet machine: every core
    assert pick_threads({1: 0.010, 2: 0.030}) == 1  # a busy one: 2 threads stall (issue #16)
    assert pick_threads({1: 0.010, 2: 0.0095}) == 1  # within the margin: one thread
    assert pick_threads({1: 0.010}) == 1


def test_the_timing_leaves_the_thread_setting_and_says_what_it_measured():
    import torch

    from engine.train.threads import choose_threads, time_threads

    before = torch.get_num_threads()
    timings = time_threads(32)
    assert 1 in timings and all(v > 0 for v in timings.values())
    assert torch.get_num_threads() == before
    try:
        n, line = choose_threads(32)
        assert torch.get_num_threads() == n and line.startswith("threads chosen by timing (1: ")
    finally:
        torch.set_num_threads(before)


def test_compare_keeps_each_methods_gan_at_a_short_budget(tmp_path, monkeypatch):
    """Compare compares methods: a short budget must not give every layered GAN the same no-GAN
    plan (latentdir's own generator run keeps its GAN the same way, engine/methods/latentdir.py)."""
    import engine.train.runner as runner
    from engine.compare import CompareConfig, _events_for
    from engine.control import RunControl

    seen = {}
    monkeypatch.setattr(runner, "train", lambda config, control, resume=False:
                        seen.setdefault("config", config) and iter(()))
    cfg = CompareConfig(folder=str(tmp_path), gt=None, out=str(tmp_path / "cmp"), minutes=0.5)
    _events_for("perturbgan", cfg, tmp_path / "cmp" / "perturbgan", None, RunControl())
    assert "gan" in [s.kind for s in plan_stages(seen["config"])]


def test_a_bootstrap_stage_with_no_time_left_is_not_given_the_default_two_minutes(monkeypatch):
    """A stage whose share of the time left is 0 s (setup overran a tiny budget) must not fall
    back to ``pipeline.bootstrap_s``: a 3-second run once trained its prior for 125 s."""
    import math
    import types

    from engine.control import RunControl
    from engine.segmenter import bootstrap
    from engine.train.segmenter_stages import bootstrap_stage

    seen: list[float] = []

    def fake_prior(cache, run_dir, size, device, budget, control, step0, **kw):
        seen.append(budget)
        return None
        yield  # a generator, as the real one

    monkeypatch.setattr(bootstrap, "bootstrap_prior", fake_prior)
    ctx = types.SimpleNamespace(
        config=types.SimpleNamespace(steps=None, size=32, pipeline=PipelineConfig()),
        dataset=types.SimpleNamespace(cache=None), run_dir=None, device="cpu",
        control=RunControl(), step=0)
    list(bootstrap_stage(ctx, Stage("bootstrap", "bootstrap", 0.0, None)))
    assert seen == [0.0] and not math.isinf(seen[0])
