"""The layered-GAN pipeline's stage plan: which stages run, in which order, with which budget.

Pure (the ``RunConfig`` and this machine's measured ``Rates`` in, stages out), so the plan is
tested without training anything. In ``--minutes`` mode the plan is built from the rates
(``rated_plan``): the work a segmenter better than GrabCut needs (GrabCut masks, the prior's fit
steps, one self-training round) is planned first, photos are sampled when the budget is short,
and the GAN only runs when its stages' shares of what is left after that buy it
``GAN_MIN_STEPS`` steps (``planned_gan_steps``). Without rates
(under torchrun; compare and latentdir, whose GAN runs at any budget) each stage gets a fixed
share (``pipeline.split``). In ``--steps`` mode GAN
stages end at a global step and fits run a step count scaled from N: no timing decides anything.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import asdict, dataclass, replace

from engine.config import RunConfig
from engine.methods import perturbgan_encoder
from engine.segmenter.fit import COARSE_SHARE
from engine.segmenter.separation import SNAP_MIN_SEPARATION, snapping_pays


@dataclass(frozen=True)
class Stage:
    name: str
    kind: str  # "bootstrap" | "gan" | "segmenter" | "encoder"
    budget_s: float | None  # --minutes mode
    end_step: int | None  # --steps mode, GAN stages only: the GAN step (GAN steps only) to stop at
    fit_steps: int | None = None  # --steps mode, prior and segmenter fits: their step count
    photos: int | None = None  # bootstrap: at most this many photos GrabCut-ed (a fixed sample)
    expected_steps: int | None = None  # --minutes mode with rates: the steps its time buys here
    grabcut_share: float | None = None  # with rates: the share of its time GrabCut is planned


@dataclass(frozen=True)
class Rates:
    """This machine's speed, measured in a run's first seconds (``engine/train/rates.py``) or the
    last measured one (cached for the app's estimate): seconds per unit of work."""

    grabcut_s: float  # one photo GrabCut-ed (a relabel snap of one photo costs about as much)
    fit_step_s: float  # one prior / segmenter UNet step (the prior's batch at the run's size)
    gan_step_s: float | None = None  # one GAN step; None when not measured (no GAN planned)
    # One step of the prior's coarse phase (``fit.COARSE_SHARE``, half the side); None where its
    # fit has none at this size (or rates from before it).
    coarse_step_s: float | None = None


# What a segmenter better than GrabCut needs, measured by bench/prior_steps.py (bench/RESULTS.md,
# "2026-12-04 (session 3)"): every photo GrabCut-ed, the prior fitted for PRIOR_STEPS steps, then
# one self-training round (the prior's masks snapped to edges by GrabCut, a fit of
# SELF_TRAIN_STEPS from the prior). On the demo at 32 px the prior stays under GrabCut (0.889 at
# 200 steps, 0.893 at 400; GrabCut 0.920); the round after it reaches 0.908 / 0.920 / 0.932 at
# 100 / 200 / 400 steps. Under that budget a round of at least MIN_SELF_TRAIN_STEPS still pays
# (+0.02 on the demo for 100 steps, where 200 more prior steps gave +0.004).
PRIOR_STEPS = 200
SELF_TRAIN_STEPS = 400
MIN_SELF_TRAIN_STEPS = 100
# Where colour does not separate the objects (``separation.snapping_pays``) self-training rounds
# lowered the IoU, and the prior alone must pass GrabCut. On the horses at 64 px a plain fit did
# at 800 steps (0.699 / 0.686 held-out against GrabCut's 0.698 / 0.667); fitted coarse-to-fine
# (``fit.COARSE_SHARE``) it did in the time of 416 plain steps (0.696 / 0.698; bench/RESULTS.md,
# 2026-12-05 session 5). Counted in full-size steps' time, so 400 (the prior takes ~2.2x as many
# steps). At 800 a slow machine's 10-minute plan cut the photos to 64 to keep the steps, and
# scored under its 5-minute run.
PRIOR_ONLY_STEPS = 400
# Fewer photos than this are not a sample worth a prior (the bootstrap's own MIN_MASKS).
MIN_SAMPLE = 64
# A budget too short for the needed work still GrabCuts this share of its time (never under
# MIN_SAMPLE photos, never over half the time): where GrabCut is cheap that is every photo. In the
# same seconds of fitting the prior on 150 photos against 64 scored +0.01 on the demo and the
# horses at 40 s, +0.026 / +0.017 (train / held-out) on the horses at 100 s, where 60 s more
# fitting on 64 photos had bought +0.014 (bench/RESULTS.md, 2026-12-05 session 6).
SHORT_GRABCUT_SHARE = 0.3
# The GAN is optional: it runs only when the time left after the needed work buys it this many
# steps. At 3,000 (CPU runs of 10 min and under had their pairs refused: issue #16) a 120-minute
# horse run on one core got 2,223 + 599 GAN steps, its pairs passed the gate (median agreement
# 0.74) and it still scored 0.703 on held-out horses against 0.733 without the GAN
# (bench/RESULTS.md, 2026-12-06 session 12). Doubled: on a GPU (~50 ms a step) that is 5
# minutes; on one CPU core (0.97 s) it leaves the GAN out below about 220 minutes (unmeasured above).
GAN_MIN_STEPS = 6000
# A run's start-up before its plan (interpreter, torch, reading the folder, the probe), for the
# estimate.
START_S = 8.0


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


def needed_work_s(photos: int, rates: Rates, separation: float | None = None) -> float:
    """Seconds of stage work a segmenter better than GrabCut needs on ``photos`` photos here:
    every photo GrabCut-ed, the prior's steps, every photo snapped again, the self-training fit;
    where snapping does not pay (``separation``), every photo GrabCut-ed and the longer prior."""
    if not snapping_pays(separation):
        return photos * rates.grabcut_s + PRIOR_ONLY_STEPS * rates.fit_step_s
    return 2 * photos * rates.grabcut_s + (PRIOR_STEPS + SELF_TRAIN_STEPS) * rates.fit_step_s


def needed_minutes(photos: int, rates: Rates, separation: float | None = None) -> float:
    """The ``--minutes`` budget that buys ``needed_work_s`` here, start-up and reserve included."""
    work = needed_work_s(photos, rates, separation)
    return (START_S + work + RESERVE_S) / (1 - RESERVE_SHARE) / 60


def estimate_line(photos: int, rates: Rates, minutes: float,
                  separation: float | None = None) -> str | None:
    """"about N minutes here; you gave M" when ``minutes`` is under the estimate, else None."""
    need = math.ceil(needed_minutes(photos, rates, separation) * 2) / 2  # to the next half minute
    if minutes >= need:
        return None
    return (f"about {need:g} minutes here for a segmenter better than GrabCut on these {photos} "
            f"photos; you gave {minutes:g}: this run GrabCuts a sample and fits fewer steps")


def available_seconds(total_s: float, elapsed_s: float) -> float:
    """The stage time a ``--minutes`` run has left now (its reserve for the last writes kept)."""
    return max(0.0, total_s - RESERVE_S - RESERVE_SHARE * total_s - elapsed_s)


@dataclass(frozen=True)
class Measured:
    """What the rated plan is built from: this machine's rates, the folder's photo count and the
    stage seconds the run has left when it plans (saved in checkpoints: a resume replans alike)."""

    rates: Rates
    photos: int
    available_s: float
    # Colour separation of the probe's GrabCut masks (``engine/segmenter/separation.py``): whether
    # self-training rounds pay on this folder. None: not measured (rounds kept).
    separation: float | None = None

    def to_record(self) -> dict[str, float | int | None]:
        """Flat, JSON-ready: the checkpoint's copy (``setup.saved_measure`` reads it back) and
        the plan record in ``metrics.jsonl``."""
        return {**asdict(self.rates), "photos": self.photos, "available_s": self.available_s,
                "separation": self.separation}


def gan_decision(config: RunConfig, measured: Measured | None = None) -> tuple[bool, str]:
    """Whether the plan trains the GAN, and why not when it does not (pure).

    ``--no-gan`` says so. With this machine's rates the GAN runs only when its stages, once the
    work the segmenter needs got its time, would take ``GAN_MIN_STEPS`` steps (``planned_gan_steps``); without
    rates, a ``--minutes`` budget under ``pipeline.min_gan_minutes`` leaves it out. Either way
    its minutes would otherwise only be taken from the segmenter. ``min_gan_minutes = 0`` keeps
    the GAN at any budget (compare, latentdir). The GAN needs the prior and segmenter stages to
    be left out (else nothing would remain).
    """
    pipe = config.pipeline
    if not pipe.gan:
        return False, "no GAN (asked): the label-free prior, then self-training on your photos"
    can_drop = pipe.bootstrap and pipe.segmenter
    if not can_drop or config.minutes is None or pipe.min_gan_minutes <= 0:
        return True, ""
    if measured is not None:
        step_s = measured.rates.gan_step_s
        planned = 0 if step_s is None else planned_gan_steps(config, measured)
        if planned < GAN_MIN_STEPS:
            cost = "" if step_s is None else f" (about {GAN_MIN_STEPS * step_s / 60:.0f} min here)"
            return False, (
                f"no GAN: {config.minutes:g} min leaves too little for its {GAN_MIN_STEPS} steps"
                f"{cost} after the prior and self-training, so they get the whole budget")
        return True, ""
    if config.minutes < pipe.min_gan_minutes:
        return False, (
            f"no GAN: {config.minutes:g} min is under the {pipe.min_gan_minutes:g} min it needs "
            "to pay off, so the prior and self-training on your photos get the whole budget")
    return True, ""


def rates_decide(config: RunConfig) -> bool:
    """Whether measured rates shape this run's plan: ``--minutes`` runs of the full pipeline,
    except where the GAN is kept at any budget (``min_gan_minutes = 0``: compare, latentdir's
    generator), whose stages keep their fixed shares (the segmenter's needs would take the GAN's)."""
    pipe = config.pipeline
    return (config.minutes is not None and pipe.bootstrap and pipe.segmenter
            and (pipe.min_gan_minutes > 0 or not pipe.gan))


def plan_stages(config: RunConfig, measured: Measured | None = None) -> list[Stage]:
    """Stages and their budgets (pure: the config and, in ``--minutes`` mode, the measured
    rates). Without rates, fractions are renormalised over the stages that run."""
    cfg, pipe = config, config.pipeline
    ready = segmenter_modules_ready()
    use_boot = pipe.bootstrap and ready["bootstrap"]
    use_seg = pipe.segmenter and ready["fit"] and ready["pairs"]
    rated = measured if rates_decide(cfg) and use_boot and use_seg else None
    use_gan = gan_decision(config, rated)[0] or not (use_boot and use_seg)
    if rated is not None and not use_gan:
        if not snapping_pays(rated.separation):
            return prior_only_plan(rated)
        return rated_plan(pipe.rounds, rated)
    return share_plan(cfg, use_boot, use_seg, use_gan, rated)


def planned_gan_steps(config: RunConfig, measured: Measured) -> int:
    """The GAN steps a plan with the GAN would give it here: its stages' shares after the prior
    and the first segmenter fit got what they need (``with_needed_floors``), at the measured
    GAN rate. The gate counts these, not the time left before the shares: at 10 minutes on the
    demo the old gate passed, then the shares gave the GAN 1,667 of the 3,000 steps it asks
    for (bench/RESULTS.md, 2026-12-04 session 3), and that run scored below the GAN-free 5
    minutes."""
    stages = share_plan(config, True, True, True, measured)
    return sum(s.expected_steps or 0 for s in stages if s.kind == "gan")


def share_plan(cfg: RunConfig, use_boot: bool, use_seg: bool, use_gan: bool,
               rated: Measured | None) -> list[Stage]:
    """Stages with fixed shares of the budget (``pipeline.split``), renormalised over the stages
    that run; with rates, the prior and first fit raised to what they need (pure)."""
    pipe = cfg.pipeline
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
    stages: list[Stage] = []
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
    stages = perturbgan_encoder.add_encoder_stage(cfg, stages)
    return with_needed_floors(stages, rated) if rated is not None else stages


def rated_plan(max_rounds: int, measured: Measured) -> list[Stage]:
    """The no-GAN plan from this machine's rates (pure): the prior, then self-training.

    What the segmenter needs comes first. When the budget holds every photo GrabCut-ed, the
    prior's ``PRIOR_STEPS`` and a self-training round of ``SELF_TRAIN_STEPS``, more rounds
    follow (each as costly) and what is left lengthens every fit. When it does not, GrabCut
    and the relabelling cover a sample of the photos sized so that the fits keep their steps,
    or ``short_sample``'s share of the time where that is more (photos bought more than fit
    steps at these budgets); the round gets what is left after the prior's steps, down to
    ``MIN_SELF_TRAIN_STEPS``; below even that, the prior alone gets the
    budget and becomes the run's segmenter (a second fit of a few steps at a restarted learning
    rate would only undo it). Each stage's GrabCut share of its time is planned too (``grabcut_share``).
    """
    g, u, n_all = measured.rates.grabcut_s, measured.rates.fit_step_s, measured.photos
    t = measured.available_s
    full_boot = n_all * g + PRIOR_STEPS * u
    full_seg = n_all * g + SELF_TRAIN_STEPS * u
    if t >= full_boot + full_seg:
        rounds = min(max_rounds, int((t - full_boot - full_seg) // full_seg))
        fits = [PRIOR_STEPS] + [SELF_TRAIN_STEPS] * (1 + rounds)
        extra = t - full_boot - (1 + rounds) * full_seg
        steps = [k + extra * k / sum(fits) / u for k in fits]
        return [_rated_stage(name, n_all, k, measured, None)
                for name, k in zip(_stage_names(len(fits)), steps, strict=True)]
    # Short: the photos that leave the fits their steps, or a short budget's share of its time
    # on GrabCut (``short_sample``) where that is more; the fits share what is left, the prior
    # keeping its ``PRIOR_STEPS`` first.
    leave = int((t - (PRIOR_STEPS + SELF_TRAIN_STEPS) * u) // (2 * g))
    n = min(n_all, max(leave, short_sample(n_all, t, g, passes=2)))
    steps = (t - 2 * n * g) / u
    if steps >= PRIOR_STEPS + MIN_SELF_TRAIN_STEPS:
        prior = max(PRIOR_STEPS, steps * PRIOR_STEPS / (PRIOR_STEPS + SELF_TRAIN_STEPS))
        return [_rated_stage("bootstrap", n, prior, measured, n),
                _rated_stage("segmenter", n, steps - prior, measured, n)]
    n = short_sample(n_all, t, g)
    return [_rated_stage("bootstrap", n, max(0.0, (t - n * g) / u), measured, n)]


def short_sample(n_all: int, t: float, g: float, passes: int = 1) -> int:
    """The photos a budget too short for the needed work GrabCuts (``passes`` times: the
    bootstrap, and the round's snapping): ``SHORT_GRABCUT_SHARE`` of its ``t`` seconds at ``g``
    a photo, at least ``MIN_SAMPLE``, never more than half of ``t``, never more than the folder."""
    cost = passes * g
    share = max(MIN_SAMPLE, int(SHORT_GRABCUT_SHARE * t / cost))
    return max(1, min(n_all, int(0.5 * t / cost), share))


def prior_only_plan(measured: Measured) -> list[Stage]:
    """The no-GAN plan where self-training does not pay (pure): the prior gets the whole budget,
    one fit on one learning-rate schedule (a second fit on the same GrabCut masks, restarted,
    scored lower than the same steps in one: horses 0.659 against 0.671). Every photo is GrabCut-ed
    when that leaves ``PRIOR_ONLY_STEPS``; else a sample sized so that it does, or
    ``short_sample``'s share of the time where that is more."""
    g, u, n_all = measured.rates.grabcut_s, measured.rates.fit_step_s, measured.photos
    t = measured.available_s
    n = min(n_all, int((t - PRIOR_ONLY_STEPS * u) // g))  # photos that leave the prior its steps
    n = max(n, short_sample(n_all, t, g))  # and at least a short budget's share (``short_sample``)
    return [_rated_stage("bootstrap", n, max(0.0, (t - n * g) / u), measured,
                         None if n >= n_all else n)]


def rounds_note(measured: Measured | None) -> str:
    """What the plan says when it leaves self-training out for this folder's colours."""
    if measured is None or snapping_pays(measured.separation):
        return ""
    return (f"no self-training rounds: colour does not separate these objects from their "
            f"background (separation {measured.separation:.3f} < {SNAP_MIN_SEPARATION}), so "
            "GrabCut's snapping would teach its own mistakes; the prior gets the time")


def _stage_names(count: int) -> list[str]:
    return ["bootstrap", "segmenter"] + [f"round-{k}-segmenter" for k in range(1, count - 1)]


def _rated_stage(name: str, photos: int, steps: float, measured: Measured,
                 sample: int | None) -> Stage:
    """A bootstrap or segmenter stage of ``photos`` GrabCut-ed or snapped and ``steps`` fit steps."""
    g, u = measured.rates.grabcut_s, measured.rates.fit_step_s
    grabcut = photos * g
    budget = grabcut + steps * u
    kind = "bootstrap" if name == "bootstrap" else "segmenter"
    share = min(MAX_GRABCUT_SHARE, GRABCUT_MARGIN * grabcut / budget) if budget > 0 else None
    return Stage(name, kind, budget, None, photos=sample if kind == "bootstrap" else None,
                 expected_steps=int(steps * u / fit_step_s(kind, measured.rates)),
                 grabcut_share=share)


def fit_step_s(kind: str, rates: Rates) -> float:
    """A fit step's mean time in a stage of ``kind`` (pure). The plan sizes every fit in
    full-size steps (what ``PRIOR_STEPS`` and the others were measured in); the prior's fit
    spends ``COARSE_SHARE`` of that time on cheaper half-size steps, so it takes more steps than
    the probe's full-size rate buys, and the plan says how many."""
    u, c = rates.fit_step_s, rates.coarse_step_s
    if kind != "bootstrap" or not c:
        return u
    return 1 / (COARSE_SHARE / c + (1 - COARSE_SHARE) / u)


# GrabCut may overrun its planned seconds by this factor (the probe timed one or two photos)...
GRABCUT_MARGIN = 1.15
# ... but never take more of a stage than this: the fit is what the stage is for.
MAX_GRABCUT_SHARE = 0.8


def with_needed_floors(stages: list[Stage], measured: Measured) -> list[Stage]:
    """A GAN plan whose bootstrap and first segmenter stage keep what they need (pure): their
    budgets are raised to ``needed_work_s``'s parts, the other stages' scaled to the same total;
    every stage says the steps its time buys here."""
    r, n = measured.rates, measured.photos
    floors = {"bootstrap": n * r.grabcut_s + PRIOR_STEPS * r.fit_step_s,
              "segmenter": n * r.grabcut_s + SELF_TRAIN_STEPS * r.fit_step_s}
    total = measured.available_s  # the fractions' budgets are shares of the whole --minutes
    raised = {s.name: max(s.budget_s or 0.0, floors[s.name]) for s in stages if s.name in floors}
    others = sum(s.budget_s or 0.0 for s in stages if s.name not in floors)
    scale = max(0.0, total - sum(raised.values())) / others if others > 0 else 0.0
    out = []
    for s in stages:
        budget = raised[s.name] if s.name in raised else (s.budget_s or 0.0) * scale
        if s.kind == "gan" and r.gan_step_s:
            expected, share = int(budget / r.gan_step_s), None
        elif s.kind in ("bootstrap", "segmenter"):
            grabcut = n * r.grabcut_s
            expected = int(max(0.0, budget - grabcut) / fit_step_s(s.kind, r))
            share = min(MAX_GRABCUT_SHARE, GRABCUT_MARGIN * grabcut / budget) if budget else None
        else:
            expected, share = None, None
        out.append(replace(s, budget_s=budget, expected_steps=expected,
                           grabcut_share=share if s.kind != "gan" else None))
    return out


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
        if s.expected_steps is not None:
            row["expected_steps"] = s.expected_steps
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
