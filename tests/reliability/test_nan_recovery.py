"""Issue #9: a loss that turns NaN or inf stops the step, is reported, and training goes on from
the last good checkpoint with halved learning rates (kept across a resume)."""

from __future__ import annotations

import math

import pytest
import torch
from train_helpers import run_all, tiny_config

from engine.config import GuardConfig, IlganConfig, RunConfig
from engine.control import RunControl
from engine.events import CheckpointSaved, Failed, Finished, WarningEvent
from engine.methods.base import LayeredGan
from engine.methods.ilgan import IlGan
from engine.runs import checkpoint as ckpt
from engine.train.runner import train

LR_G, LR_D = IlganConfig().lr_g, IlganConfig().lr_d


def poison_g_loss(monkeypatch: pytest.MonkeyPatch, at_calls: set[int], value: float) -> dict:
    """Make the G total ``value`` on the given (1-based) G-loss calls; count the calls."""
    real = IlGan.g_loss
    seen = {"calls": 0}

    def g_loss(self, fake):
        seen["calls"] += 1
        terms = real(self, fake)
        if seen["calls"] in at_calls:
            terms["g_total"] = terms["g_total"] * value  # keeps the graph: backward runs on it
        return terms

    monkeypatch.setattr(IlGan, "g_loss", g_loss)
    return seen


def all_finite(state: object) -> bool:
    if isinstance(state, torch.Tensor):
        return bool(torch.isfinite(state.float()).all()) if state.is_floating_point() else True
    if isinstance(state, dict):
        return all(all_finite(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return all(all_finite(v) for v in state)
    return not isinstance(state, float) or math.isfinite(state)


def opt_lrs(payload: dict) -> list[float]:
    method = payload["method"]
    return [g["lr"] for opt in ("opt_g", "opt_d") for g in method[opt]["param_groups"]]


def collapse_warnings(events: list) -> list[WarningEvent]:
    """The guard's warnings (the tiny folder's few-photos warning is not one)."""
    return [e for e in events if isinstance(e, WarningEvent) and e.kind == "collapse"]


def config(folder, out, **kw) -> RunConfig:
    # log_every is large: the NaN must be caught at the step itself, not at the next log step.
    base = {"steps": 12, "log_every": 100, "checkpoint_every": 4, "preview_every": 100}
    return tiny_config(folder, out, **{**base, **kw})


def test_nan_g_loss_restores_the_good_checkpoint_with_half_the_rate(tiny_demo_folder, tmp_path, monkeypatch):
    seen = poison_g_loss(monkeypatch, {6}, float("nan"))  # step 6: good.pt is the one of step 4
    applied: list[int] = []
    real_ema = LayeredGan.update_ema
    monkeypatch.setattr(LayeredGan, "update_ema", lambda self: (applied.append(1), real_ema(self)))
    events = run_all(config(tiny_demo_folder, tmp_path / "run"))

    warnings = collapse_warnings(events)
    assert len(warnings) == 1, [w.message for w in warnings]
    text = warnings[0].message
    assert "non-finite loss at step 6" in text and "g_total is nan" in text
    assert "restored the good checkpoint of step 4" in text and "learning rates x0.5" in text
    assert warnings[0].step == 4
    # The poisoned step changed nothing: 12 applied G updates for 12 finished steps, plus the
    # 2 steps (5, 6) trained again after the restore; the run is not marked failed.
    assert isinstance(events[-1], Finished) and events[-1].step == 12, events[-1]
    assert not any(isinstance(e, Failed) for e in events)
    assert seen["calls"] == 12 + 2 and len(applied) == 12 + 2 - 1

    final = ckpt.load(ckpt.list_checkpoints(tmp_path / "run")[-1])
    assert final["step"] == 12 and final["lr_scale"] == 0.5
    assert all_finite(final["method"])
    assert opt_lrs(final) == pytest.approx([LR_G * 0.5, LR_D * 0.5])
    # The recovery itself is on disk at once (step 4, new seed, halved rate), and nothing from
    # the abandoned trajectory (steps 5-6) is left for a resume to pick up.
    saves = [e.step for e in events if isinstance(e, CheckpointSaved)]
    assert saves == [4, 4, 8, 12, 12]


def test_inf_d_loss_at_the_first_steps_restarts_from_scratch_with_half_the_rate(tiny_demo_folder, tmp_path, monkeypatch):
    real = IlGan.d_loss
    calls = {"n": 0}

    def d_loss(self, real_batch, fake):
        calls["n"] += 1
        terms = real(self, real_batch, fake)
        if calls["n"] == 2:
            terms["d_total"] = terms["d_total"] + float("inf")
        return terms

    monkeypatch.setattr(IlGan, "d_loss", d_loss)
    events = run_all(config(tiny_demo_folder, tmp_path / "run", steps=6))
    warnings = collapse_warnings(events)
    assert len(warnings) == 1 and "d_total is inf" in warnings[0].message
    assert "restarted from scratch at step 0" in warnings[0].message
    assert isinstance(events[-1], Finished) and events[-1].step == 6
    final = ckpt.load(ckpt.list_checkpoints(tmp_path / "run")[-1])
    assert final["lr_scale"] == 0.5 and all_finite(final["method"])


def test_a_resumed_run_keeps_the_lower_rate(tiny_demo_folder, tmp_path, monkeypatch):
    poison_g_loss(monkeypatch, {6}, float("nan"))
    cfg = config(tiny_demo_folder, tmp_path / "run")
    control = RunControl()
    for ev in train(cfg, control):
        if isinstance(ev, WarningEvent) and ev.kind == "collapse":
            control.stop()  # stops at the next step boundary, with a checkpoint
    monkeypatch.undo()
    resumed = run_all(cfg, resume=True)
    assert isinstance(resumed[-1], Finished) and resumed[-1].step == 12
    final = ckpt.load(ckpt.list_checkpoints(tmp_path / "run")[-1])
    assert final["lr_scale"] == 0.5
    assert opt_lrs(final) == pytest.approx([LR_G * 0.5, LR_D * 0.5])


def test_nan_every_time_fails_with_a_clear_message(tiny_demo_folder, tmp_path, monkeypatch):
    poison_g_loss(monkeypatch, set(range(3, 100)), float("nan"))
    cfg = config(tiny_demo_folder, tmp_path / "run", guard=GuardConfig(grace_steps=1000, max_restarts=2))
    events = run_all(cfg)
    warnings = collapse_warnings(events)
    assert [("x0.5" in w.message, "x0.25" in w.message) for w in warnings] == [(True, False), (False, True)]
    assert isinstance(events[-1], Failed)
    assert "collapsed 3 times" in events[-1].error and "g_total is nan" in events[-1].error
