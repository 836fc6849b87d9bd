"""Issue #17: metrics.jsonl holds every stage's losses (the prior's and the segmenter fits', not
only the GAN's), so an opened run plots them all."""

from __future__ import annotations

import json

from train_helpers import run_all, tiny_config

from engine.config import PipelineConfig
from engine.events import Failed
from engine.runs.metrics_log import MetricsLog

PIPE = PipelineConfig(bootstrap=True, segmenter=True, rounds=0, refine_labels=False,
                      segmenter_steps=4, segmenter_batch=4)


def loss_phases(run_dir) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "event" not in record and "phase" in record:
            out.setdefault(record["phase"], []).append(record)
    return out


def test_prior_and_segmenter_losses_are_logged(tiny_demo_folder, tmp_path):
    cfg = tiny_config(tiny_demo_folder, tmp_path / "run", steps=4, pipeline=PIPE)
    events = run_all(cfg)
    assert not [e.error for e in events if isinstance(e, Failed)]
    phases = loss_phases(tmp_path / "run")
    assert {"bootstrap", "gan", "segmenter"} <= set(phases)
    for phase in ("bootstrap", "segmenter"):
        assert all(isinstance(r["step"], int) for r in phases[phase])
        assert any(isinstance(v, float) for k, v in phases[phase][-1].items() if k != "step")


def test_a_resume_cuts_the_log_back_to_the_checkpoint_step(tmp_path):
    """Every stage counts on the global step, so what lies past the checkpoint is redone."""
    log = MetricsLog(tmp_path / "metrics.jsonl")
    log.append({"step": 4, "phase": "gan", "d": 1.0})
    log.append({"step": 5, "phase": "segmenter", "bce": 0.5})  # the fit counts on from step 4
    log.append({"step": 6, "phase": "segmenter", "bce": 0.4})  # after the checkpoint at 5
    log.truncate_after(5)
    assert [r["step"] for r in log.read()] == [4, 5]
