"""Typed events that the trainer yields.

The CLI, the GUI and the tests consume the same stream. Events carry plain Python / numpy data
(never live tensors) so they can cross threads and be kept in a history without holding GPU memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Event:
    """Base class: every event knows the global step it refers to."""

    step: int


@dataclass(frozen=True)
class Started(Event):
    device: str
    method: str
    phase: str
    config: dict[str, Any]
    total_steps: int | None = None


@dataclass(frozen=True)
class PlanMade(Event):
    """What the run will do, said before it does it: one row per stage (``stage``, ``kind`` and
    ``minutes``, ``until_step`` or ``fit_steps``), and why a stage was left out (``note``)."""

    stages: list[dict[str, Any]]
    note: str = ""


@dataclass(frozen=True)
class PhaseChanged(Event):
    """The pipeline moved to another stage (bootstrap, gan, segmenter, round N)."""

    phase: str
    detail: str = ""


@dataclass(frozen=True)
class Progress(Event):
    """How far the current stage is. ``steps_per_s`` counts ``unit`` per second: training steps,
    or photos for stages that go through the folder (GrabCut, relabelling), which then also say
    ``done`` of ``total`` so a display never shows a frozen step counter as if it were progress."""

    phase: str
    steps_per_s: float
    elapsed_s: float
    eta_s: float | None
    fraction: float | None
    unit: str = "steps"  # "steps" or "photos"
    done: int | None = None  # units done in this stage, when counted
    total: int | None = None  # units this stage will do, when known
    run_eta_s: float | None = None  # --minutes runs: wall time left to the run's deadline


@dataclass(frozen=True)
class Losses(Event):
    phase: str
    values: dict[str, float]


@dataclass(frozen=True)
class Preview(Event):
    """Generated triplets for a fixed set of latent codes, as uint8 arrays.

    background, foreground, composite: (N, H, W, 3); mask: (N, H, W).
    """

    background: np.ndarray
    foreground: np.ndarray
    mask: np.ndarray
    composite: np.ndarray
    coverage: float = 0.0
    path: str | None = None


@dataclass(frozen=True)
class CheckpointSaved(Event):
    path: str
    good: bool = True


@dataclass(frozen=True)
class Warning_(Event):
    """Something the user should know about (collapse recovered, bad file skipped, ...)."""

    message: str
    kind: str = "warning"


@dataclass(frozen=True)
class Finished(Event):
    run_dir: str
    stopped: bool = False
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Failed(Event):
    error: str
    traceback: str = ""
    # engine.errors.FailureCause: "input" (bad folder or arguments), "run" (an expected failure
    # of the run) or "internal" (a bug: show the traceback).
    cause: str = "run"


# Public alias with a readable name; ``Warning`` itself would shadow the builtin.
WarningEvent = Warning_
