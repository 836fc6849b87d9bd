"""The collapse guard: pure checks on mask statistics, and recovery inside the trainer."""

from __future__ import annotations

import torch
from train_helpers import run_all, tiny_config

from engine.config import GuardConfig
from engine.events import Failed, Finished, WarningEvent
from engine.methods.base import LayeredGan
from engine.train import gan_stage
from engine.train.collapse import MaskStats, check, mask_stats, non_finite

GUARD = GuardConfig(grace_steps=100)
HEALTHY = MaskStats(coverage=0.25, binariness=0.9, border=0.02, centre=0.5)


def test_mask_stats_of_a_centred_square():
    m = torch.zeros(2, 1, 32, 32)
    m[:, :, 8:24, 8:24] = 1
    s = mask_stats(m)
    assert abs(s.coverage - 0.25) < 1e-6 and s.binariness == 1.0
    assert s.border == 0.0 and s.centre == 1.0


def test_mask_stats_of_an_inverted_mask_hug_the_border():
    m = torch.ones(2, 1, 32, 32)
    m[:, :, 8:24, 8:24] = 0
    s = mask_stats(m)
    assert s.border == 1.0 and s.border_excess == 1.0
    assert not check(s, 200, GUARD).ok and "border" in check(s, 200, GUARD).reason


def test_check_names_each_collapse():
    assert check(HEALTHY, 200, GUARD).ok
    cases = {
        "all background": MaskStats(0.001, 1.0, 0.0, 0.0),
        "all foreground": MaskStats(0.99, 1.0, 1.0, 1.0),
        "grey": MaskStats(0.3, 0.05, 0.3, 0.3),
        "background layer": MaskStats(0.5, 0.9, 0.9, 0.2),
    }
    for words, stats in cases.items():
        verdict = check(stats, 200, GUARD)
        assert not verdict.ok and words in verdict.reason, (words, verdict)
        assert check(stats, 10, GUARD).ok  # grace period: masks start grey and blobby
    # Shape checks wait for the whole grace period; empty/full masks only for a quarter of it.
    assert check(cases["grey"], 50, GUARD).ok and check(cases["background layer"], 50, GUARD).ok
    assert not check(cases["all foreground"], 50, GUARD).ok


def test_non_finite_statistics_and_losses_always_fail():
    assert not check(MaskStats(float("nan"), 0.5, 0.1, 0.1), 0, GUARD).ok
    assert non_finite({"d": 1.0, "g": float("inf")}) == "loss g is inf"
    assert non_finite({"d": 1.0}) is None


def test_collapse_restores_the_good_checkpoint_then_fails(tiny_demo_folder, tmp_path, monkeypatch):
    """Healthy for the first check (so good.pt exists at step 2), collapsed from then on."""
    calls = {"n": 0}

    def fake_stats(method, codes):
        calls["n"] += 1
        return HEALTHY if calls["n"] == 1 else MaskStats(0.0, 1.0, 0.0, 0.0)

    monkeypatch.setattr(gan_stage, "stats_of", fake_stats)
    cfg = tiny_config(tiny_demo_folder, tmp_path / "run", steps=50, guard=GuardConfig(grace_steps=0))
    events = run_all(cfg)
    warnings = [e for e in events if isinstance(e, WarningEvent) and e.kind == "collapse"]
    assert len(warnings) == 3
    assert all("restored the good checkpoint of step 2" in w.message for w in warnings)
    assert [w.message.split("seed ")[1].split(" ")[0] for w in warnings] == ["1003", "2003", "3003"]
    assert isinstance(events[-1], Failed) and "collapsed 4 times" in events[-1].error
    assert "all background" in events[-1].error
    assert not any(isinstance(e, Finished) for e in events)


def test_nan_losses_are_caught(tiny_demo_folder, tmp_path, monkeypatch):
    real_step = LayeredGan.step

    def nan_step(self, real):
        out = real_step(self, real)
        out["g_total"] = torch.tensor(float("nan"))
        return out

    monkeypatch.setattr(LayeredGan, "step", nan_step)
    cfg = tiny_config(
        tiny_demo_folder, tmp_path / "run", steps=50, guard=GuardConfig(max_restarts=1)
    )
    events = run_all(cfg)
    warnings = [e for e in events if isinstance(e, WarningEvent) and e.kind == "collapse"]
    assert len(warnings) == 1 and "loss g_total is nan" in warnings[0].message
    assert "restarted from scratch" in warnings[0].message  # no good checkpoint yet
    assert isinstance(events[-1], Failed) and "nan" in events[-1].error


def test_mask_stats_tell_one_box_for_every_code_from_varied_masks():
    import pytest
    import torch

    from engine.train.collapse import mask_stats

    box = torch.zeros(8, 1, 32, 32)
    box[..., 8:24, 8:24] = 1.0
    varied = torch.zeros(8, 1, 32, 32)
    for i in range(8):  # one small square per mask, each in another place
        varied[i, :, 4 * i : 4 * i + 4, 4 * i : 4 * i + 4] = 1.0
    assert mask_stats(box).sameness == pytest.approx(1.0)
    assert mask_stats(varied).sameness < 0.2


def test_a_layer_failure_never_restores_a_checkpoint_from_inside_the_grace(
        tiny_demo_folder, tmp_path, monkeypatch):
    """The layer checks only start after the grace: a generator whose layers are already swapped
    inside it passes every check it gets there. Restoring such a checkpoint repeats the failure
    (flowers, 60 min: four recoveries to GAN step 530, each failing 75 steps later), so only a
    checkpoint judged on its layers, or the untrained generator, may be restored."""
    swapped = MaskStats(coverage=0.5, binariness=0.9, border=0.9, centre=0.2)  # hugs the border
    monkeypatch.setattr(gan_stage, "stats_of", lambda method, codes: swapped)
    cfg = tiny_config(tiny_demo_folder, tmp_path / "run", steps=50,
                      guard=GuardConfig(grace_steps=8, max_restarts=2))
    events = run_all(cfg)
    warnings = [e for e in events if isinstance(e, WarningEvent) and e.kind == "collapse"]
    assert len(warnings) == 2 and all("hugs the border" in w.message for w in warnings)
    for w in warnings:  # the untrained generator again, never a step inside the grace
        assert "restarted from scratch" in w.message or "checkpoint of step 0 " in w.message, w
    assert isinstance(events[-1], Failed)
