"""The layered-GAN pipeline's stage plan: which stages run, in which order, with which budget.

Pure (a function of the ``RunConfig``), so the plan is tested without training anything. In
``--minutes`` mode each stage gets a share of the time (``pipeline.split``); in ``--steps`` mode
GAN stages end at a global step and segmenter stages run ``pipeline.segmenter_steps``.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, replace

from engine.config import RunConfig
from engine.methods import perturbgan_encoder


@dataclass(frozen=True)
class Stage:
    name: str
    kind: str  # "bootstrap" | "gan" | "segmenter" | "encoder"
    budget_s: float | None  # --minutes mode
    end_step: int | None  # --steps mode, GAN stages only: the GAN step (GAN steps only) to stop at
    fit_steps: int | None = None  # --steps mode, prior and segmenter fits: their step count
    photos: int | None = None  # --steps mode, bootstrap: at most this many photos GrabCut-ed


# --steps N is about N GAN steps' worth of work: each UNet fit runs N steps (at most
# pipeline.segmenter_steps; a fit step costs less than a GAN step) and the prior's GrabCut covers
# at most PHOTOS_PER_STEP * N photos (at least MIN_PHOTOS), so --steps 3 is a quick check.
MIN_FIT_STEPS = 2
PHOTOS_PER_STEP = 4
MIN_PHOTOS = 16


def steps_mode_work(config: RunConfig) -> tuple[int, int]:
    """(fit steps, GrabCut photo cap) of each stage in ``--steps`` mode, scaled from N (pure)."""
    assert config.steps is not None
    fit = min(config.pipeline.segmenter_steps, max(MIN_FIT_STEPS, config.steps))
    return fit, max(MIN_PHOTOS, PHOTOS_PER_STEP * config.steps)


def segmenter_modules_ready() -> dict[str, bool]:
    """Which segmenter-stage modules exist (they are written separately; stages gate on them)."""
    names = {
        "bootstrap": "engine.segmenter.bootstrap",
        "fit": "engine.segmenter.fit",
        "pairs": "engine.segmenter.pairs",
    }
    return {k: importlib.util.find_spec(v) is not None for k, v in names.items()}


def gan_decision(config: RunConfig) -> tuple[bool, str]:
    """Whether the plan trains the GAN, and why not when it does not (pure).

    ``--no-gan`` says so; a ``--minutes`` budget under ``pipeline.min_gan_minutes`` leaves the
    GAN out because its minutes would only be taken from the segmenter (the prior and
    self-training on the photos beat a few hundred CPU GAN steps whose pairs the gate refuses).
    The GAN needs the prior and segmenter stages to be left out (else nothing would remain).
    """
    pipe = config.pipeline
    if not pipe.gan:
        return False, "no GAN (asked): the label-free prior, then self-training on your photos"
    can_drop = pipe.bootstrap and pipe.segmenter
    if can_drop and config.minutes is not None and config.minutes < pipe.min_gan_minutes:
        return False, (
            f"no GAN: {config.minutes:g} min is under the {pipe.min_gan_minutes:g} min it needs "
            "to pay off, so the prior and self-training on your photos get the whole budget")
    return True, ""


def plan_stages(config: RunConfig) -> list[Stage]:
    """Stages and their budgets (pure: a function of the config); fractions are renormalised
    over the stages that run."""
    cfg, pipe = config, config.pipeline
    ready = segmenter_modules_ready()
    use_boot = pipe.bootstrap and ready["bootstrap"]
    use_seg = pipe.segmenter and ready["fit"] and ready["pairs"]
    use_gan = gan_decision(config)[0] or not (use_boot and use_seg)
    rounds = pipe.rounds if use_seg else 0
    split = pipe.split
    weights = {"bootstrap": split.bootstrap if use_boot else 0.0,
               "gan": split.gan if use_gan else 0.0,
               "segmenter": split.segmenter if use_seg else 0.0,
               "rounds": split.rounds if rounds else 0.0}
    total_w = sum(weights.values())
    total_s = cfg.minutes * 60 if cfg.minutes is not None else None

    def budget(weight: float) -> float | None:
        return None if total_s is None else total_s * weight / total_w

    fit, photos = steps_mode_work(cfg) if cfg.steps is not None else (None, None)
    stages = []
    if use_boot:
        stages.append(Stage("bootstrap", "bootstrap", budget(weights["bootstrap"]), None,
                            fit, photos))
    if use_gan:
        stages.append(Stage("gan", "gan", budget(weights["gan"]), cfg.steps))
    if use_seg:
        stages.append(Stage("segmenter", "segmenter", budget(weights["segmenter"]), None, fit))
    round_steps = max(1, int(pipe.round_gan_fraction * cfg.steps)) if cfg.steps else 0
    for k in range(1, rounds + 1):
        share = weights["rounds"] / rounds
        if use_gan:
            end = cfg.steps + k * round_steps if cfg.steps else None
            stages.append(Stage(f"round-{k}-gan", "gan", budget(share * 2 / 3), end))
            stages.append(Stage(f"round-{k}-segmenter", "segmenter", budget(share / 3), None, fit))
        else:  # a self-training round: the segmenter relearns from its own refined labels
            stages.append(Stage(f"round-{k}-segmenter", "segmenter", budget(share), None, fit))
    if not use_gan:
        return stages  # the encoder inverts a generator: there is none
    return perturbgan_encoder.add_encoder_stage(cfg, stages)


OPTIONAL_KINDS = ("gan", perturbgan_encoder.STAGE_KIND)


def drop_optional(stages: list[Stage], index: int, freed_s: float) -> tuple[list[Stage], list[str]]:
    """The plan after the optional stage at ``index`` failed (pure).

    That stage and every later GAN or encoder stage go (they would continue or invert the GAN
    that failed); ``freed_s`` (what the failed stage had left) and the dropped stages' budgets
    go to the stages that remain after it, in proportion to theirs, so the run still ends on
    time and spends its whole budget. Returns the new plan and the dropped stages' names.
    """
    before, after = stages[:index], stages[index:]
    dropped = [s for s in after if s.kind in OPTIONAL_KINDS]
    kept = [s for s in after if s.kind not in OPTIONAL_KINDS]
    gone_s = freed_s + sum(s.budget_s or 0.0 for s in dropped[1:])
    kept_s = sum(s.budget_s or 0.0 for s in kept)
    if kept_s > 0:
        kept = [replace(s, budget_s=None if s.budget_s is None
                        else s.budget_s * (1 + gone_s / kept_s)) for s in kept]
    return [*before, *kept], [s.name for s in dropped]


# Kept back from a --minutes budget for what follows the last step: the last checkpoint and
# segmenter.pt writes.
RESERVE_S = 2.0
RESERVE_SHARE = 0.01


def stage_seconds(total_s: float, elapsed_s: float, stages: list[Stage]) -> float:
    """The first of ``stages``' share of the run's remaining wall time (pure).

    Each stage, when it starts, gets the run's real time left (minus a small reserve for the
    last writes) in proportion to the planned budgets of the stages still to run: time a stage
    left unused flows to the later ones, and time it overran comes out of theirs, so the run
    ends on its deadline whatever each piece of work cost on this machine.
    """
    left = total_s - RESERVE_S - RESERVE_SHARE * total_s - elapsed_s
    weights = [s.budget_s or 0.0 for s in stages]
    if not weights or sum(weights) <= 0:
        return max(0.0, left)
    return max(0.0, left * weights[0] / sum(weights))


def describe_plan(stages: list[Stage]) -> list[dict[str, object]]:
    """The plan as plain rows (name, minutes or steps) for the ``PlanMade`` event and the log."""
    rows: list[dict[str, object]] = []
    for s in stages:
        row: dict[str, object] = {"stage": s.name, "kind": s.kind}
        if s.budget_s is not None:
            row["minutes"] = round(s.budget_s / 60, 2)
        elif s.end_step is not None:
            row["until_step"] = s.end_step
        elif s.fit_steps is not None:
            row["fit_steps"] = s.fit_steps
        if s.photos is not None:
            row["photos"] = s.photos
        rows.append(row)
    return rows


def gate_warnings(config: RunConfig) -> list[str]:
    """What the plan left out because this build lacks it, said to the user."""
    pipe, ready = config.pipeline, segmenter_modules_ready()
    out = []
    if pipe.bootstrap and not ready["bootstrap"]:
        out.append("bootstrap prior not available in this build (engine.segmenter.bootstrap); skipped")
    if pipe.segmenter and not (ready["fit"] and ready["pairs"]):
        out.append("segmenter fitting not available in this build (engine.segmenter.fit); skipped")
    return out
