"""The whole pipeline in --steps mode: GAN, segmenter fit on synthetic pairs, one alternate round."""

from __future__ import annotations

from dataclasses import replace

import torch
from train_helpers import run_all, tiny_config

from engine.config import PipelineConfig
from engine.control import RunControl
from engine.events import Failed, Finished, Losses, PhaseChanged, Started
from engine.segmenter.model import load_segmenter
from engine.train.runner import train

PIPE = PipelineConfig(bootstrap=False, segmenter=True, rounds=1, segmenter_steps=2,
                      segmenter_batch=4, round_gan_fraction=0.5)


def test_pipeline_runs_stages_in_order_and_writes_the_segmenter(tiny_demo_folder, tmp_path):
    cfg = tiny_config(tiny_demo_folder, tmp_path / "run", steps=4, pipeline=PIPE)
    events = run_all(cfg)
    assert not [e.error for e in events if isinstance(e, Failed)]
    phases = [e.phase for e in events if isinstance(e, PhaseChanged)]
    order = [p for i, p in enumerate(phases) if p not in phases[:i]]
    assert order == ["gan", "segmenter", "round-1-gan", "round-1-segmenter"]
    gan_steps = [e.step for e in events if isinstance(e, Losses) and e.phase.endswith("gan")]
    assert gan_steps[-1] == 8  # 4 GAN steps, 2 fit steps, a round of 0.5 x 4 GAN steps
    assert isinstance(events[-1], Finished) and events[-1].step == 10  # + the round's 2 fit steps
    model, info = load_segmenter(tmp_path / "run" / "segmenter.pt")
    assert info.size == 32 and info.method == "ilgan"
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 1, 32, 32)
    metrics = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert '"s_bg"' in metrics  # the round's GAN logs how much object S sees in the backgrounds


def test_resume_restarts_the_stage_it_was_in(tiny_demo_folder, tmp_path):
    cfg = tiny_config(tiny_demo_folder, tmp_path / "run", steps=4, pipeline=PIPE)
    control = RunControl()
    for ev in train(cfg, control):
        if isinstance(ev, PhaseChanged) and ev.phase == "segmenter":
            control.stop()
    events = run_all(cfg, resume=True)
    assert isinstance(events[0], Started) and events[0].step == 4 and events[0].phase == "segmenter"
    phases = [e.phase for e in events if isinstance(e, PhaseChanged)]
    assert "gan" not in phases and phases[0] == "segmenter"
    assert isinstance(events[-1], Finished) and events[-1].step == 10


def test_no_segmenter_stages_when_disabled(tiny_demo_folder, tmp_path):
    cfg = tiny_config(tiny_demo_folder, tmp_path / "run", steps=2,
                      pipeline=replace(PIPE, segmenter=False))
    phases = {e.phase for e in run_all(cfg) if isinstance(e, PhaseChanged)}
    assert phases == {"gan"}
    assert not (tmp_path / "run" / "segmenter.pt").exists()


def test_perturbgan_round_reads_its_size_floor_from_the_segmenter(tiny_demo_folder, tmp_path):
    """A GAN stage with a segmenter measures the photos' object sizes and says what floor it uses."""
    import json

    from engine.train.size_floor import LOWEST

    cfg = tiny_config(tiny_demo_folder, tmp_path / "run", steps=4, pipeline=PIPE, method="perturbgan")
    events = run_all(cfg)
    assert isinstance(events[-1], Finished)
    said = [e.detail for e in events if isinstance(e, PhaseChanged) and "size floor" in e.detail]
    assert len(said) == 1 and "12 photos" in said[0]  # only the round has a segmenter
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    floors = [x for x in lines if x.get("event") == "size_floor"]
    assert len(floors) == 1 and floors[0]["step"] == 6 and floors[0]["photos"] == 12  # 4 GAN + 2 fit
    assert LOWEST <= floors[0]["value"] <= cfg.perturbgan.eta
