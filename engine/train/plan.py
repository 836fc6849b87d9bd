"""The layered-GAN pipeline's stage plan: which stages run, in which order, with which budget.

Pure (a function of the ``RunConfig``), so the plan is tested without training anything. In
``--minutes`` mode each stage gets a share of the time (``pipeline.split``); in ``--steps`` mode
GAN stages end at a global step and segmenter stages run ``pipeline.segmenter_steps``.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from engine.config import RunConfig
from engine.methods import perturbgan_encoder


@dataclass(frozen=True)
class Stage:
    name: str
    kind: str  # "bootstrap" | "gan" | "segmenter" | "encoder"
    budget_s: float | None  # --minutes mode
    end_step: int | None  # --steps mode, GAN stages only: the global step to stop at


def segmenter_modules_ready() -> dict[str, bool]:
    """Which segmenter-stage modules exist (they are written separately; stages gate on them)."""
    names = {
        "bootstrap": "engine.segmenter.bootstrap",
        "fit": "engine.segmenter.fit",
        "pairs": "engine.segmenter.pairs",
    }
    return {k: importlib.util.find_spec(v) is not None for k, v in names.items()}


def plan_stages(config: RunConfig) -> list[Stage]:
    """Stages and their budgets (pure: a function of the config); fractions are renormalised
    over the stages that run."""
    cfg, pipe = config, config.pipeline
    ready = segmenter_modules_ready()
    use_boot = pipe.bootstrap and ready["bootstrap"]
    use_seg = pipe.segmenter and ready["fit"] and ready["pairs"]
    rounds = pipe.rounds if use_seg else 0
    split = pipe.split
    weights = {"bootstrap": split.bootstrap if use_boot else 0.0, "gan": split.gan,
               "segmenter": split.segmenter if use_seg else 0.0,
               "rounds": split.rounds if rounds else 0.0}
    total_w = sum(weights.values())
    total_s = cfg.minutes * 60 if cfg.minutes is not None else None

    def budget(weight: float) -> float | None:
        return None if total_s is None else total_s * weight / total_w

    stages = []
    if use_boot:
        stages.append(Stage("bootstrap", "bootstrap", budget(weights["bootstrap"]) or pipe.bootstrap_s, None))
    stages.append(Stage("gan", "gan", budget(weights["gan"]), cfg.steps))
    if use_seg:
        stages.append(Stage("segmenter", "segmenter", budget(weights["segmenter"]), None))
    round_steps = max(1, int(pipe.round_gan_fraction * cfg.steps)) if cfg.steps else 0
    for k in range(1, rounds + 1):
        share = weights["rounds"] / rounds
        end = cfg.steps + k * round_steps if cfg.steps else None
        stages.append(Stage(f"round-{k}-gan", "gan", budget(share * 2 / 3), end))
        stages.append(Stage(f"round-{k}-segmenter", "segmenter", budget(share / 3), None))
    return perturbgan_encoder.add_encoder_stage(cfg, stages)


def gate_warnings(config: RunConfig) -> list[str]:
    """What the plan left out because this build lacks it, said to the user."""
    pipe, ready = config.pipeline, segmenter_modules_ready()
    out = []
    if pipe.bootstrap and not ready["bootstrap"]:
        out.append("bootstrap prior not available in this build (engine.segmenter.bootstrap); skipped")
    if pipe.segmenter and not (ready["fit"] and ready["pairs"]):
        out.append("segmenter fitting not available in this build (engine.segmenter.fit); skipped")
    return out
