"""Issue #14: one global step for a whole pipeline run. Every stage's steps count (the prior's and
the segmenter fits' too), so events, metrics.jsonl and checkpoint names never go backwards or repeat
a step, and a resumed run continues the count. Before, a fit reported steps from the GAN's step on
and the next GAN stage restarted at that step + 1."""

from __future__ import annotations

import json

from train_helpers import run_all, tiny_config

from engine.config import PipelineConfig
from engine.control import RunControl
from engine.events import CheckpointSaved, Failed, Finished, Losses, Started
from engine.runs import checkpoint as ckpt
from engine.train.runner import train

PIPE = PipelineConfig(bootstrap=True, segmenter=True, rounds=1, refine_labels=False,
                      segmenter_steps=2, segmenter_batch=4, round_gan_fraction=0.5)
# --steps 4: prior fit 2, GAN 4, segmenter fit 2, round GAN 2, round fit 2 -> global step 12.
LAST_STEP = {"bootstrap": 2, "gan": 6, "segmenter": 8, "round-1-gan": 10, "round-1-segmenter": 12}


def strictly_increasing(values: list[int]) -> bool:
    return all(a < b for a, b in zip(values, values[1:], strict=False))


def test_every_stage_counts_on_one_global_step(tiny_demo_folder, tmp_path):
    cfg = tiny_config(tiny_demo_folder, tmp_path / "run", steps=4, pipeline=PIPE)
    events = run_all(cfg)
    assert not [e.error for e in events if isinstance(e, Failed)]
    steps = [e.step for e in events]
    assert steps == sorted(steps)
    losses = [e for e in events if isinstance(e, Losses)]
    assert strictly_increasing([e.step for e in losses])
    assert {e.phase: e.step for e in losses} == LAST_STEP
    assert isinstance(events[-1], Finished) and events[-1].step == 12
    saved = [e.step for e in events if isinstance(e, CheckpointSaved)]
    assert saved == sorted(saved) and saved[-1] == 12
    assert ckpt.list_checkpoints(tmp_path / "run")[-1].name == "step-0000012.pt"
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = [r["step"] for r in records]
    assert logged == sorted(logged)
    assert strictly_increasing([r["step"] for r in records if "event" not in r])


def test_a_resume_continues_the_count(tiny_demo_folder, tmp_path):
    ref = run_all(tiny_config(tiny_demo_folder, tmp_path / "ref", steps=4, pipeline=PIPE))
    cfg = tiny_config(tiny_demo_folder, tmp_path / "run", steps=4, pipeline=PIPE)
    control = RunControl()
    before = []
    for ev in train(cfg, control):
        before.append(ev)
        if isinstance(ev, Losses) and ev.phase == "gan" and ev.step == 4:
            control.stop()  # two GAN steps in, after the prior's two fit steps
    assert isinstance(before[-1], Finished) and before[-1].stopped and before[-1].step == 4
    after = run_all(cfg, resume=True)
    assert isinstance(after[0], Started) and after[0].step == 4 and after[0].phase == "gan"
    losses = [e for e in before + after if isinstance(e, Losses)]
    assert strictly_increasing([e.step for e in losses])
    assert {e.phase: e.step for e in losses} == LAST_STEP
    assert isinstance(after[-1], Finished) and after[-1].step == ref[-1].step == 12
