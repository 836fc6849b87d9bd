"""Tiny configurations for trainer tests: 32 px, batch 4, narrow nets, a few steps."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from engine.config import GuardConfig, NetConfig, PipelineConfig, RunConfig


def tiny_config(folder: Path, out: Path, **overrides: Any) -> RunConfig:
    base = RunConfig(
        folder=str(folder), out=str(out), method="ilgan", size=32, batch=4, steps=6,
        device="cpu", threads=1, seed=3, log_every=2, preview_every=4, checkpoint_every=2,
        preview_count=3, net=NetConfig(g_width=8, d_width=8, z_dim=16),
        guard=GuardConfig(grace_steps=1000),
        pipeline=PipelineConfig(bootstrap=False, segmenter=False, rounds=0),
    )
    return replace(base, **overrides)


def run_all(config: RunConfig, **kwargs: Any) -> list[Any]:
    from engine.train.runner import train

    return list(train(config, **kwargs))


def drain(gen: Any) -> tuple[list[Any], Any]:
    """All events of a stage generator and the value it returned (``yield from``'s result)."""
    events = []
    try:
        while True:
            events.append(next(gen))
    except StopIteration as stop:
        return events, stop.value
