"""The segmenter stages of the layered-GAN pipeline: the bootstrap prior and the UNet fits.

A segmenter stage fits the run's UNet on the generator's (composite, mask) pairs when the
label-free judge trusts them, else on the user's photos labelled by the current segmenter
(``choose_pair_source`` decides, a pure function). Each fit replaces ``segmenter.pt`` through
the run folder and keeps a per-stage copy, so a resumed run restarts a stage from the previous
stage's segmenter (``load_stage_segmenter``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engine.config import PipelineConfig
from engine.events import Event, PhaseChanged, WarningEvent
from engine.parallel import distributed
from engine.segmenter.fit import FINETUNE_LR, SCRATCH_LR, Sampler
from engine.segmenter.samplers import labelled_photos, mixed
from engine.train import pair_sources
from engine.train.context import StageContext
from engine.train.plan import Stage

# A segmenter stage's time: GrabCut snapping of the labels stops at RELABEL_SHARE of it (the
# photos not reached keep the segmenter's own masks); the fit gets what is left, never less than
# MIN_FIT_SHARE (an overrun the next stages absorb: the runner shares out the real time left).
RELABEL_SHARE = 0.4
MIN_FIT_SHARE = 0.1
# Generated pairs: candidates judged per stage (this many fit batches' worth), the share of the
# stage's time their drawing may take, and how many must agree with the prior for any to be used.
BANK_BATCHES = 64
BANK_SHARE = 0.15
MIN_BANK = 64


@dataclass(frozen=True)
class PairSource:
    """Where a segmenter stage's training pairs come from, and what the user is told."""

    generated: bool  # the generator's pairs are used (mixed with labelled photos if any)
    detail: str
    warning: str | None = None


def choose_pair_source(
    has_teacher: bool, agreement: float | None, sameness: float, kept: int | None,
    pipe: PipelineConfig,
) -> PairSource:
    """Trust the generator's pairs that the label-free judge agrees with, one by one, when enough
    of them do and the masks are not one shape for every latent code (pure: measured inputs in,
    decision out). ``kept``: how many candidates agreed (``pair_sources.agreeing_bank``)."""
    if not has_teacher:
        return PairSource(True, "generated pairs")
    shown = "n/a" if agreement is None else f"{agreement:.2f}"
    if sameness > pipe.max_sameness:
        why = (f"are one shape for every latent code (sameness {sameness:.2f} > "
               f"{pipe.max_sameness:.2f}: a box, not objects)")
    elif kept is None or kept < MIN_BANK:
        why = (f"disagree with the label-free prior ({kept or 0} pairs with IoU >= "
               f"{pipe.min_agreement:.2f}, fewer than {MIN_BANK}; mean IoU {shown})")
    else:
        mix = " + labelled photos" if pipe.real_mix > 0 else ""
        return PairSource(True, f"{kept} generated pairs the prior agrees with{mix} "
                                f"(mean agreement {shown})")
    return PairSource(
        False, f"labelled photos only (agreement {shown}, sameness {sameness:.2f})",
        f"the generator's masks {why}, so its pairs are not used this time; "
        "the segmenter keeps learning from the prior's masks of your photos",
    )


def bootstrap_stage(ctx: StageContext, stage: Stage) -> Generator[Event, None, None]:
    from engine.segmenter.bootstrap import bootstrap_prior

    # A planned budget of 0 s (the run's time is already spent) is a budget, not "unset".
    budget = ctx.config.pipeline.bootstrap_s if stage.budget_s is None else stage.budget_s
    steps = None
    if ctx.config.steps is not None:
        # --steps runs count work, never time, so that they are reproducible and a killed
        # run resumes to the same weights: GrabCut covers a fixed sample of the folder (its
        # masks are cached for resumes) and the prior trains for the plan's fit steps.
        budget, steps = math.inf, stage.fit_steps or ctx.config.pipeline.segmenter_steps
    # bootstrap_prior writes (and on resume reuses) RUN_DIR/bootstrap/prior.pt itself.
    prior = yield from bootstrap_prior(
        ctx.dataset.cache, ctx.run_dir, ctx.config.size, ctx.device,
        budget, ctx.control, ctx.step, steps=steps, photos=stage.photos,
        grabcut_share=stage.grabcut_share,
    )
    if not ctx.control.stop_requested:
        ctx.segmenter = ctx.prior = prior


def segmenter_stage(ctx: StageContext, stage: Stage) -> Generator[Event, None, None]:
    """Fit the run's segmenter on the generator's pairs, checked against the label-free prior.

    Without labels nothing says whether the GAN put the object in the foreground layer, but
    the bootstrap prior (trained on the real photos) gives a second opinion: on a composite
    whose layers are right, the prior finds the object where the mask is. When the two agree
    (IoU >= ``pipeline.min_agreement``) the segmenter learns from generated pairs mixed with
    real photos labelled by the prior; when they do not, generated pairs would teach it the
    wrong layer (measured on horses: IoU 0.06), so it learns from the real photos alone and
    the user is told (``choose_pair_source``). The net starts from the previous segmenter so
    rounds accumulate.
    """
    import copy

    from engine.nets.unet import UNet
    from engine.segmenter.bootstrap import prior_config
    from engine.segmenter.fit import fit_unet

    pipe = ctx.config.pipeline
    t_stage = time.perf_counter()  # the judge, the relabelling and the fit share the stage's time
    teacher = ctx.segmenter
    with_gan = ctx.gan_trained()
    agreement: float | None = None
    sameness = 0.0
    bank: pair_sources.Bank | None = None
    if with_gan:
        judge = ctx.prior if ctx.prior is not None else teacher
        agreement = measure_agreement(ctx, judge) if judge is not None else None
        sameness = measure_sameness(ctx)
        if judge is not None and teacher is not None and sameness <= pipe.max_sameness:
            bank = measure_bank(ctx, judge, stage)
    kept = None if bank is None else len(bank)
    if with_gan:
        source = choose_pair_source(teacher is not None, agreement, sameness, kept, pipe)
    else:  # no GAN ran (--no-gan, a short budget, or it failed): self-training on the photos
        source = PairSource(False, "your photos labelled by the previous segmenter (no GAN)")
    ctx.metrics.append({"step": ctx.step, "event": "segmenter-source", "stage": stage.name,
                        "agreement": agreement, "sameness": sameness, "kept_pairs": kept,
                        "candidates": None if bank is None else bank.candidates,
                        "gan_pairs": source.generated})
    photos = (yield from photo_pairs(ctx, teacher, stage)) if teacher is not None else None
    grabcut_targets = photos is not None and not self_training_pays(ctx)
    if photos is None and teacher is not None and source.generated:
        photos = labelled_photos(ctx.dataset, teacher, ctx.device, ctx.seed + 11)
    elif photos is None and teacher is not None:
        # Self-training alone would lower the segmenter here (separation.py) and the prior's
        # GrabCut masks are gone: keep it, and leave this stage's time to the stages after it.
        yield WarningEvent(ctx.step, f"{stage.name}: {source.warning or 'no generated pairs'}; "
                           "self-training does not pay on these photos (their colours do not "
                           "separate object and background), so the segmenter is kept as it is",
                           kind="layers")
        if distributed.is_main():  # the stage's segmenter, as a fit would have written it
            ctx.folder.write_segmenter(teacher, ctx.config.size, ctx.config.method,
                                       Path(ctx.config.folder).name, stage=stage.name)
        return
    if distributed.stop_agreed(ctx.control):
        return
    if teacher is None:
        sampler = pair_sources.generated_pairs(ctx.method)
    elif source.generated:
        assert photos is not None and bank is not None
        sampler = mixed(pair_sources.bank_pairs(bank, ctx.seed + 17), photos,
                                     pipe.real_mix)
    else:
        assert photos is not None
        sampler = photos
    if source.warning is not None:
        yield WarningEvent(ctx.step, f"{stage.name}: {source.warning}", kind="layers")
    detail = source.detail
    if grabcut_targets:
        detail += "; your photos with the prior's GrabCut masks (self-training does not pay here)"
    yield PhaseChanged(ctx.step, stage.name, detail)
    from_teacher = (teacher is not None and isinstance(teacher, UNet)
                    and teacher.config == prior_config())
    if from_teacher:
        start = copy.deepcopy(teacher).train().requires_grad_(True)
    else:
        start = UNet(prior_config())
    steps = None if stage.budget_s is not None else (stage.fit_steps or pipe.segmenter_steps)
    budget = stage.budget_s
    if budget is not None:  # the judge and the relabelling came out of this stage's time
        budget = max(budget - (time.perf_counter() - t_stage), MIN_FIT_SHARE * budget)
    unet = yield from fit_unet(
        sampler, start, ctx.device, budget, steps,
        pipe.segmenter_batch, ctx.control, stage.name, ctx.step,
        lr=FINETUNE_LR if from_teacher else SCRATCH_LR, confidence_weighted=True,
    )
    if ctx.control.stop_requested:
        return
    unet.eval().requires_grad_(False)
    if distributed.is_main():
        # The stage's own copy first: a run killed after segmenter.pt is replaced but before
        # the stage's checkpoint redoes this stage, and must start it from the previous
        # stage's segmenter, not from this one (see load_stage_segmenter).
        ctx.folder.write_segmenter(
            unet, ctx.config.size, ctx.config.method, Path(ctx.config.folder).name,
            stage=stage.name)
    ctx.segmenter = unet


def self_training_pays(ctx: StageContext) -> bool:
    """Whether a fit on the photos' self-training labels is worth running on this folder: the
    colour separation the run measured (``engine/segmenter/separation.py``); unmeasured: yes."""
    from engine.segmenter.separation import snapping_pays

    return snapping_pays(None if ctx.measured is None else ctx.measured.separation)


def measure_agreement(ctx: StageContext, judge: Any) -> float:
    """IoU between the judge's masks of generated composites and the generator's own."""
    assert ctx.method is not None
    return pair_sources.agreement(ctx.method, judge, ctx.seed + 7)


def measure_bank(ctx: StageContext, judge: Any, stage: Stage) -> pair_sources.Bank:
    """The generated pairs the judge agrees with, drawn within ``BANK_SHARE`` of the stage."""
    assert ctx.method is not None
    pipe = ctx.config.pipeline
    rules = pair_sources.BankRules(
        candidates=BANK_BATCHES * pipe.segmenter_batch, min_iou=pipe.min_agreement,
        max_seconds=None if stage.budget_s is None else BANK_SHARE * stage.budget_s,
        needed=MIN_BANK)
    return pair_sources.agreeing_bank(ctx.method, judge, ctx.seed + 19, rules)


def measure_sameness(ctx: StageContext) -> float:
    """How much the generator's masks are one shape whatever the code (1: a fixed box)."""
    assert ctx.method is not None
    return pair_sources.generated_sameness(ctx.method, ctx.seed + 13)


def photo_pairs(ctx: StageContext, teacher: Any,
                stage: Stage) -> Generator[Event, None, Sampler | None]:
    """The user's photos and their training masks for a segmenter stage.

    Where snapping pays (``self_training_pays``): the teacher's masks, GrabCut-refined when the
    pipeline says so. Where it does not, the bootstrap's GrabCut masks, the prior's own targets
    (None when they are gone): snapped labels lowered the horses' held-out IoU in every round
    variant measured (bench/RESULTS.md, 2026-12-05), and the teacher's own masks teach a copy of
    the teacher (horses, 60 min: the prior's 0.691 held-out stayed 0.687 / 0.688 through two
    stages), while the prior kept improving on GrabCut's masks for an hour (0.718).
    """
    if not self_training_pays(ctx):
        return (yield from prior_targets(ctx))
    if ctx.config.pipeline.refine_labels:
        from engine.segmenter.bootstrap import make_sampler
        from engine.segmenter.relabel import refined_labels

        labels = None
        if distributed.is_main():  # under torchrun rank 0 refines, the others receive it
            share = stage.grabcut_share or RELABEL_SHARE  # the rated plan sizes it
            deadline = None if stage.budget_s is None else share * stage.budget_s
            labels = yield from refined_labels(ctx.dataset.cache, teacher, ctx.config.size,
                                               ctx.device, ctx.control, stage.name, ctx.step,
                                               deadline_s=deadline)
        labels = distributed.broadcast_object(labels)
        if labels is not None:
            return make_sampler(*labels, ctx.config.size, seed=ctx.seed + 11)
    return labelled_photos(ctx.dataset, teacher, ctx.device, ctx.seed + 11)


def prior_targets(ctx: StageContext) -> Generator[Event, None, Sampler | None]:
    """The photos with the bootstrap's GrabCut masks (read back from its cache: the bootstrap's
    own sample of the folder; photos its GrabCut did not reach stay out, at most one more is
    computed), or None where the bootstrap left none."""
    from engine.segmenter.bootstrap import grabcut_sampler

    mask_dir = ctx.run_dir / "bootstrap" / "masks"
    if ctx.dataset is None or not mask_dir.is_dir():
        return None
    sample = next((s.photos for s in ctx.stages if s.kind == "bootstrap"), None)
    return (yield from grabcut_sampler(ctx.dataset.cache, mask_dir, ctx.config.size, 0.0,
                                       ctx.control, ctx.step, photos=sample))


def load_stage_segmenter(ctx: StageContext) -> None:
    """After a resume: the segmenter the current stage uses for L_bg (prior or latest fit)."""
    from engine.segmenter.model import load_segmenter

    done = {s.kind for s in ctx.stages[: ctx.stage_index]}
    fitted = [s.name for s in ctx.stages[: ctx.stage_index] if s.kind == "segmenter"]
    path = None
    if fitted and ctx.folder.stage_segmenter_path(fitted[-1]).exists():
        path = ctx.folder.stage_segmenter_path(fitted[-1])
    elif "segmenter" in done and (ctx.run_dir / "segmenter.pt").exists():
        path = ctx.run_dir / "segmenter.pt"  # a run from before the per-stage copies
    elif "bootstrap" in done and ctx.folder.prior_path.exists():
        path = ctx.folder.prior_path
    # Building a net draws its random init from the global RNG, which the checkpoint has just
    # restored: fork it so that a resumed run draws what the uninterrupted one would. And
    # channels_last, as fit_unet left the nets in the run that trained them: conv kernels
    # differ by memory format in the last bit, which a GAN amplifies into other weights.
    with torch.random.fork_rng(devices=[]):
        if path is not None:
            ctx.segmenter = load_segmenter(path, ctx.device)[0].to(
                memory_format=torch.channels_last)
        if "bootstrap" in done and ctx.folder.prior_path.exists():
            ctx.prior = load_segmenter(ctx.folder.prior_path, ctx.device)[0].to(
                memory_format=torch.channels_last)
