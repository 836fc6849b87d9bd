"""The training pipeline as one generator of events: the CLI, the GUI and the tests all run this.

Stages, in order (each a sub-generator driven with ``yield from``):
1. ``bootstrap``: a label-free prior segmenter (GrabCut masks -> UNet), if enabled;
2. ``gan``: the layered GAN, with L_bg from the prior when there is one;
3. ``segmenter``: a UNet fitted on filtered synthetic (composite, mask) pairs of the EMA generator;
4. ``round-K-gan`` / ``round-K-segmenter``: the GAN continued with L_bg from the latest segmenter,
   then the segmenter refitted.

Everything that goes wrong becomes a ``Failed`` event (never a silent stop). Pause, resume and stop
are honoured at step boundaries; stop writes a checkpoint first, so ``--resume`` continues at the
same step. A checkpoint is written at every stage transition, so a resumed run restarts the stage
it was in (GAN stages continue mid-way).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import random
import time
import traceback
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine import config as config_mod
from engine.atomic import DiskFullError, write_json
from engine.config import RunConfig
from engine.control import RunControl
from engine.data import RandomCropDataset, load_folder
from engine.device import configure_cpu_threads, describe, pick_device
from engine.errors import InputError, failure_cause
from engine.events import (
    CheckpointSaved,
    Event,
    Failed,
    Finished,
    Losses,
    PhaseChanged,
    Preview,
    Progress,
    Started,
    WarningEvent,
)
from engine.methods import LayeredGan, build_method, perturbgan_encoder
from engine.train import checkpoint as ckpt
from engine.train import distributed, pair_sources
from engine.train.checkpoint import CheckpointError
from engine.train.collapse import MaskStats, Verdict, check, mask_stats, non_finite
from engine.train.metrics_log import MetricsLog
from engine.train.previews import sample_arrays, write_grid
from engine.train.size_floor import SizeFloor, size_floor

log = logging.getLogger(__name__)
STAGE_SEED_STRIDE = 100_003  # stage k starts from seed + stride * (k + 1)

GUARD_SAMPLES = 64
MAX_BAD_FILE_WARNINGS = 10


class RunError(Exception):
    """A failure with a message meant for the user (shown as is, without the exception type)."""


@dataclass(frozen=True)
class Stage:
    name: str
    kind: str  # "bootstrap" | "gan" | "segmenter"
    budget_s: float | None  # --minutes mode
    end_step: int | None  # --steps mode, GAN stages only: the global step to stop at


def train(
    config: RunConfig, control: RunControl | None = None, *, resume: bool = False
) -> Iterator[Event]:
    """Run the whole pipeline for ``config``; with ``resume``, continue the run in ``config.out``."""
    if config.method == "redo":
        # ReDO segments real photos with its own mask net: no layered GAN, no segmenter stages.
        yield from _train_redo(config, control, resume)
        return
    run = _Run(config, control or RunControl())
    try:
        yield from run.execute(resume)
    except Exception as exc:  # every failure reaches the consumer as an event
        cause = failure_cause(exc, (RunError, CheckpointError, DiskFullError))
        # The consumer reports an expected failure as one line; only a bug gets its traceback.
        log.log(logging.ERROR if cause == "internal" else logging.DEBUG, "training failed: %s", exc,
                exc_info=cause == "internal")
        message = f"{type(exc).__name__}: {exc}" if cause == "internal" else str(exc)
        yield Failed(step=run.step, error=message, traceback=traceback.format_exc(), cause=cause)


def _train_redo(config: RunConfig, control: RunControl | None, resume: bool) -> Iterator[Event]:
    from engine.methods.redo import RedoConfig, train_redo

    if config.threads:
        torch.set_num_threads(config.threads)
    redo = RedoConfig(
        folder=config.folder, out=config.out, size=config.size, batch=config.batch,
        minutes=config.minutes, steps=config.steps, device=config.device, seed=config.seed,
    )
    yield from train_redo(redo, control, resume=resume)


def segmenter_modules_ready() -> dict[str, bool]:
    """Which segmenter-stage modules exist (they are written separately; stages gate on them)."""
    names = {
        "bootstrap": "engine.segmenter.bootstrap",
        "fit": "engine.segmenter.fit",
        "pairs": "engine.segmenter.pairs",
    }
    return {k: importlib.util.find_spec(v) is not None for k, v in names.items()}


class _Run:
    def __init__(self, config: RunConfig, control: RunControl) -> None:
        self.config = config
        self.control = control
        self.run_dir = Path(config.out)
        self.metrics = MetricsLog(self.run_dir / "metrics.jsonl")
        self.step = 0
        self.stage_index = 0
        self.stage_elapsed = 0.0
        self.restarts = 0
        self.seed = config.seed
        # Learning rates as a fraction of the method's: halved at each non-finite loss, saved in
        # checkpoints so that a resumed run keeps the lower rate.
        self.lr_scale = 1.0
        self.method: LayeredGan | None = None
        self.segmenter: Any = None  # the UNet used for L_bg in the current GAN stage
        self.floor: SizeFloor | None = None  # from the segmenter, for the current GAN stage
        self.prior: Any = None  # the bootstrap prior: the independent judge of layer assignment
        self.last_stats: MaskStats | None = None
        self.last_verdict: tuple[int, Verdict] | None = None
        self.stage_start_step = 0

    # -- setup ----------------------------------------------------------------------------------
    def execute(self, resume: bool) -> Generator[Event, None, None]:
        cfg = self.config
        if cfg.threads:
            # On a shared machine fewer threads than cores can be many times faster: OpenMP
            # workers that spin-wait on a busy core stall every op (measured 18x at 32 px).
            torch.set_num_threads(cfg.threads)
        else:
            configure_cpu_threads()
        self.device, device_warning = pick_device(cfg.device)
        # Under torchrun: join the process group, cuda:LOCAL_RANK; only rank 0 writes the run.
        self.device = distributed.setup(self.device, cfg.threads)
        distributed.check_batch(cfg.batch, "--batch")
        if not distributed.is_main():
            self.metrics = distributed.NullLog()  # type: ignore[assignment]
        payload = self._resume_payload() if resume else None
        if payload is None and ckpt.list_checkpoints(self.run_dir):
            raise InputError(
                f"{self.run_dir} already holds a run; resume it (--resume) or choose a new folder"
            )
        if distributed.is_main():
            write_json(self.run_dir / "config.json", cfg.to_dict())

        self._reseed(self.seed)
        bad_files: list[str] = []
        cache = load_folder(cfg.folder, cfg.size, on_bad=lambda b: bad_files.append(f"{b.path}: {b.reason}"))
        if len(cache) == 0:
            raise InputError(f"no readable images in {cfg.folder}")
        self.dataset = RandomCropDataset(cache, cfg.size)
        self.method = build_method(cfg, self.device)
        codes_rng = torch.Generator().manual_seed(cfg.seed + 1)
        self.preview_codes = self.method.sample_codes(cfg.preview_count, codes_rng)
        self.guard_codes = self.method.sample_codes(GUARD_SAMPLES, codes_rng)
        self.stages = self._plan()

        if payload is not None:
            self._restore(payload)
            self.metrics.truncate_after(self.step)
        stage_name = self.stages[min(self.stage_index, len(self.stages) - 1)].name
        yield Started(
            step=self.step, device=describe(self.device), method=cfg.method, phase=stage_name,
            config=cfg.to_dict(), total_steps=cfg.steps,
        )
        if device_warning:
            yield WarningEvent(self.step, device_warning)
        for line in bad_files[:MAX_BAD_FILE_WARNINGS]:
            yield WarningEvent(self.step, f"skipped {line}", kind="bad-file")
        if len(bad_files) > MAX_BAD_FILE_WARNINGS:
            yield WarningEvent(self.step, f"skipped {len(bad_files)} unreadable files in all", kind="bad-file")
        for warning in self._gate_warnings():
            yield WarningEvent(self.step, warning)

        if payload is not None:
            self._load_stage_segmenter()
        while self.stage_index < len(self.stages):
            stage = self.stages[self.stage_index]
            if self.step == self.stage_start_step and self.stage_elapsed == 0.0:
                # Each stage draws from its own seed, not from what the stages before it drew: a
                # run killed after prior.pt was written resumes by loading the prior (no init, no
                # draws), and must still train on exactly as the uninterrupted run did.
                self._reseed(self.seed + STAGE_SEED_STRIDE * (self.stage_index + 1))
            yield PhaseChanged(self.step, stage.name)
            if stage.kind == "gan":
                yield from self._gan_stage(stage)
            elif stage.kind == "bootstrap":
                yield from self._bootstrap_stage(stage)
            elif stage.kind == perturbgan_encoder.STAGE_KIND:
                yield from perturbgan_encoder.encoder_stage(self, stage)
            else:
                yield from self._segmenter_stage(stage)
            if distributed.stop_agreed(self.control):
                yield self._checkpoint(good=False)
                yield Finished(self.step, str(self.run_dir), stopped=True, summary=self._summary())
                return
            self.stage_index += 1
            self.stage_elapsed = 0.0
            self.stage_start_step = self.step
            yield self._checkpoint(good=self._healthy_now())
        yield Finished(self.step, str(self.run_dir), stopped=False, summary=self._summary())

    def _resume_payload(self) -> dict[str, Any] | None:
        saved_path = self.run_dir / "config.json"
        if not saved_path.exists():
            raise InputError(f"nothing to resume in {self.run_dir} (no config.json)")
        try:
            saved = RunConfig.from_dict(json.loads(saved_path.read_text(encoding="utf-8")))
        except (ValueError, TypeError) as exc:
            raise InputError(f"{saved_path} is not a valid run configuration ({exc})") from exc
        problems = config_mod.resume_mismatch(saved, self.config)
        if problems:
            raise InputError("cannot resume: the run was trained differently (" + "; ".join(problems) + ")")
        if distributed.is_main():
            ckpt.remove_stale_temps(self.run_dir)  # half-written files of a killed run
        found = ckpt.list_checkpoints(self.run_dir)
        if not found:
            return None  # killed before the first checkpoint: start again from step 0
        return ckpt.load(found[-1])

    def _restore(self, payload: dict[str, Any]) -> None:
        assert self.method is not None
        self.method.load_state_dict(payload["method"])
        ckpt.restore_rng(payload["rng"], self.data_rng)
        self.step = int(payload["step"])
        self.stage_index = min(int(payload["stage_index"]), len(self.stages))
        self.stage_elapsed = float(payload["stage_elapsed"])
        self.stage_start_step = int(payload["stage_start_step"])
        self.restarts = int(payload["restarts"])
        self.seed = int(payload["seed"])
        self.lr_scale = float(payload.get("lr_scale", 1.0))
        self._apply_lr_scale()

    def _reseed(self, seed: int) -> None:
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        self.data_rng = np.random.default_rng(seed)

    def _plan(self) -> list[Stage]:
        """Stages and their budgets; fractions are renormalised over the stages that run."""
        cfg, pipe = self.config, self.config.pipeline
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

    def _gate_warnings(self) -> list[str]:
        pipe, ready = self.config.pipeline, segmenter_modules_ready()
        out = []
        if pipe.bootstrap and not ready["bootstrap"]:
            out.append("bootstrap prior not available in this build (engine.segmenter.bootstrap); skipped")
        if pipe.segmenter and not (ready["fit"] and ready["pairs"]):
            out.append("segmenter fitting not available in this build (engine.segmenter.fit); skipped")
        return out

    # -- GAN stage ------------------------------------------------------------------------------
    def _gan_stage(self, stage: Stage) -> Generator[Event, None, None]:
        cfg, method = self.config, self.method
        assert method is not None
        self.floor = None
        if self.segmenter is not None and method.has_size_floor:
            self.floor = size_floor(self.segmenter, self.dataset.cache, cfg.size, self.device,
                                    ceiling=cfg.perturbgan.eta)
        self._attach_priors(method)
        if self.floor is not None:
            self.metrics.append({"step": self.step, "event": "size_floor", "value": self.floor.value,
                                 "measured": self.floor.measured, "photos": self.floor.photos})
            yield PhaseChanged(self.step, stage.name, self.floor.describe())
        start = time.perf_counter() - self.stage_elapsed
        window_t, window_step = time.perf_counter(), self.step
        rate = 0.0
        while not self._stage_done(stage, time.perf_counter() - start):
            if distributed.stop_agreed(self.control):
                break
            if self.control.paused:
                paused_at = time.perf_counter()
                stop = self.control.wait_if_paused()
                start += time.perf_counter() - paused_at  # paused time is not training time
                window_t += time.perf_counter() - paused_at
                if stop:
                    break
            real = self.dataset.sample_batch(cfg.batch, self.data_rng)
            losses = self.method.step(real)  # not ``method``: a recovery may rebuild it
            self.step += 1
            self.stage_elapsed = time.perf_counter() - start
            if self.method.nonfinite is not None:  # the step was not applied (methods/base.py)
                yield Losses(self.step, stage.name, {k: float(v) for k, v in losses.items()})
                yield from self._recover(f"loss {self.method.nonfinite}", lower_lr=True)
                start = time.perf_counter() - self.stage_elapsed
                continue
            done = self._stage_done(stage, self.stage_elapsed)
            if self.step % cfg.log_every == 0 or done:
                now = time.perf_counter()
                rate = (self.step - window_step) / max(now - window_t, 1e-9)
                window_t, window_step = now, self.step
                values = {k: float(v) for k, v in losses.items()}
                yield Losses(self.step, stage.name, values)
                yield self._progress(stage, rate)
                restored = yield from self._guard(stage, values)
                if restored:
                    start = time.perf_counter() - self.stage_elapsed
                    continue
            if self.step % cfg.preview_every == 0:
                yield self._preview()
            if self.step % cfg.checkpoint_every == 0:
                restored = yield from self._guard(stage, None)
                if restored:
                    start = time.perf_counter() - self.stage_elapsed
                    continue
                yield self._checkpoint(good=self._healthy_now())
        yield self._preview()

    def _attach_priors(self, method: LayeredGan) -> None:
        """What the current GAN stage learns from the segmenter: L_bg and the size floor."""
        pipe = self.config.pipeline
        method.set_segmenter(self.segmenter, pipe.bg_weight, pipe.mask_prior_weight)
        method.set_size_floor(self.floor.value if self.floor is not None else None)

    def _stage_done(self, stage: Stage, elapsed: float) -> bool:
        if stage.end_step is not None:
            return self.step >= stage.end_step
        # Under torchrun the budget runs on rank 0's clock, so all ranks stop at the same step.
        return distributed.agree_done(stage.budget_s is not None and elapsed >= stage.budget_s)

    def _progress(self, stage: Stage, rate: float) -> Progress:
        if stage.end_step is not None:
            remaining = stage.end_step - self.step
            eta = remaining / rate if rate > 0 else None
            span = stage.end_step - self.stage_start_step
            fraction = 1 - remaining / span if span > 0 else 1.0
        else:
            budget = stage.budget_s or 0.0
            eta = max(0.0, budget - self.stage_elapsed)
            fraction = min(1.0, self.stage_elapsed / budget) if budget else None
        return Progress(self.step, stage.name, rate, self.stage_elapsed, eta, fraction)

    def _health(self, values: dict[str, float] | None) -> tuple[Verdict, MaskStats]:
        """Guard verdict for the current step (NaN losses first, then mask statistics)."""
        assert self.method is not None
        stats = stats_of(self.method, self.guard_codes)
        self.last_stats = stats
        bad = non_finite(values) if values is not None else None
        verdict = Verdict(False, bad) if bad else check(stats, self.step, self.config.guard)
        self.last_verdict = (self.step, verdict)
        return verdict, stats

    def _healthy_now(self) -> bool:
        if self.last_verdict is None or self.last_verdict[0] != self.step:
            self._health(None)
        assert self.last_verdict is not None
        return self.last_verdict[1].ok

    def _guard(self, stage: Stage, values: dict[str, float] | None) -> Generator[Event, None, bool]:
        """Check health, log metrics; on collapse restore the good checkpoint (True if restored)."""
        if values is None and self.last_verdict is not None and self.last_verdict[0] == self.step:
            verdict = self.last_verdict[1]
        else:
            verdict, stats = self._health(values)
            record = {"step": self.step, "phase": stage.name, "time": round(self.stage_elapsed, 2)}
            record.update(values or {})
            record.update({f"mask_{k}": v for k, v in stats.to_dict().items()})
            if self.segmenter is not None:
                record["s_bg"] = self._segmenter_on_background()
            self.metrics.append(record)
        if verdict.ok:
            return False
        yield from self._recover(verdict.reason, lower_lr=values is not None and bool(non_finite(values)))
        return True

    def _apply_lr_scale(self) -> None:
        """Set both optimisers' learning rates to ``lr_scale`` times the method's own."""
        assert self.method is not None
        lr_g, lr_d, _ = self.method.optimiser_settings()
        for opt, lr in ((self.method.opt_g, lr_g), (self.method.opt_d, lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr * self.lr_scale

    def _recover(self, reason: str, lower_lr: bool = False) -> Generator[Event, None, None]:
        """Restore the good checkpoint (or restart the stage) with a new seed.

        A collapse gets a new seed only; a non-finite loss (``lower_lr``) also halves both
        learning rates, since a step that overflowed once tends to overflow again from the same
        weights at the same rate.
        """
        limit = self.config.guard.max_restarts
        self.restarts += 1
        if self.restarts > limit:
            raise RunError(
                f"training collapsed {self.restarts} times (last: {reason} at step {self.step}); "
                "try another --seed, --method or a smaller --size"
            )
        self.seed = self.config.seed + 1000 * self.restarts
        good = ckpt.good_path(self.run_dir)
        old_step = self.step
        if good.exists():
            payload = ckpt.load(good)
            assert self.method is not None
            self.method.load_state_dict(payload["method"])
            self.step = int(payload["step"])
            where = f"restored the good checkpoint of step {self.step}"
        else:
            self.method = build_method(self.config, self.device)
            self._attach_priors(self.method)
            self.step = self.stage_start_step
            where = f"restarted from scratch at step {self.step}"
        if lower_lr:
            self.lr_scale *= 0.5
        self._apply_lr_scale()
        self._reseed(self.seed)
        self.last_verdict = None
        # Make the recovery durable before anything else: a kill from here on resumes from the
        # restored weights with the new seed and rate, never from a later checkpoint of the
        # abandoned trajectory (those are deleted once this one is on disk).
        yield self._checkpoint(good=good.exists())
        if distributed.is_main():
            ckpt.drop_after(self.run_dir, self.step)
        what = "non-finite loss" if lower_lr else "collapse"
        lr_note = f" and learning rates x{self.lr_scale:g}" if lower_lr else ""
        message = (
            f"{what} at step {old_step}: {reason}; {where} with seed {self.seed}{lr_note} "
            f"(recovery {self.restarts} of {limit})"
        )
        log.warning(message)
        self.metrics.append({"step": self.step, "event": "recovered", "reason": reason, "from_step": old_step})
        yield WarningEvent(self.step, message, kind="collapse")

    def _segmenter_on_background(self) -> float:
        """Layer-assignment diagnostic: how much object the segmenter finds in the backgrounds."""
        assert self.method is not None
        sample = self.method.sample(self.guard_codes[:16])
        with torch.no_grad():
            return float(torch.sigmoid(self.segmenter(sample.background)).mean())

    def _preview(self) -> Preview:
        assert self.method is not None
        sample = self.method.sample(self.preview_codes, ema=True)
        arrays = sample_arrays(sample)
        path = self.run_dir / "previews" / f"step-{self.step:07d}.png"
        if distributed.is_main():
            write_grid(path, arrays)
        return Preview(self.step, **arrays, coverage=float(sample.mask.mean()), path=str(path))

    def _checkpoint(self, good: bool) -> CheckpointSaved:
        assert self.method is not None
        payload = {
            "config": self.config.to_dict(),
            "step": self.step,
            "stage_index": self.stage_index,
            "stage": self.stages[min(self.stage_index, len(self.stages) - 1)].name,
            "stage_elapsed": self.stage_elapsed,
            "stage_start_step": self.stage_start_step,
            "restarts": self.restarts,
            "seed": self.seed,
            "lr_scale": self.lr_scale,
            "method": self.method.state_dict(),
            "rng": ckpt.capture_rng(self.data_rng),
        }
        if not distributed.is_main():
            return CheckpointSaved(self.step, "", good=good)
        path = ckpt.save_rolling(self.run_dir, self.step, payload, self.config.keep_checkpoints, good)
        return CheckpointSaved(self.step, str(path), good=good)

    def _summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"steps": self.step, "restarts": self.restarts}
        if self.last_stats is not None:
            out.update({f"mask_{k}": v for k, v in self.last_stats.to_dict().items()})
        return out

    # -- segmenter stages -----------------------------------------------------------------------
    def _bootstrap_stage(self, stage: Stage) -> Generator[Event, None, None]:
        from engine.segmenter.bootstrap import bootstrap_prior

        budget, steps = stage.budget_s or self.config.pipeline.bootstrap_s, None
        if self.config.steps is not None:
            # --steps runs count work, never time, so that they are reproducible and a killed
            # run resumes to the same weights: GrabCut covers the whole folder (its masks are
            # cached for resumes) and the prior trains for ``segmenter_steps``.
            budget, steps = math.inf, self.config.pipeline.segmenter_steps
        # bootstrap_prior writes (and on resume reuses) RUN_DIR/bootstrap/prior.pt itself.
        prior = yield from bootstrap_prior(
            self.dataset.cache, self.run_dir, self.config.size, self.device,
            budget, self.control, self.step, steps=steps,
        )
        if not self.control.stop_requested:
            self.segmenter = self.prior = prior

    def _segmenter_stage(self, stage: Stage) -> Generator[Event, None, None]:
        """Fit the run's segmenter on the generator's pairs, checked against the label-free prior.

        Without labels nothing says whether the GAN put the object in the foreground layer, but
        the bootstrap prior (trained on the real photos) gives a second opinion: on a composite
        whose layers are right, the prior finds the object where the mask is. When the two agree
        (IoU >= ``pipeline.min_agreement``) the segmenter learns from generated pairs mixed with
        real photos labelled by the prior; when they do not, generated pairs would teach it the
        wrong layer (measured on horses: IoU 0.06), so it learns from the real photos alone and
        the user is told. The net starts from the previous segmenter so rounds accumulate.
        """
        import copy

        from engine.nets.unet import UNet
        from engine.segmenter.bootstrap import prior_config
        from engine.segmenter.fit import fit_unet
        from engine.segmenter.model import save_segmenter

        pipe = self.config.pipeline
        teacher = self.segmenter
        judge = self.prior if self.prior is not None else teacher
        agreement = self._agreement_with(judge) if judge is not None else None
        sameness = self._mask_sameness()
        t_stage = time.perf_counter()
        photos = (yield from self._photo_pairs(teacher, stage)) if teacher is not None else None
        if distributed.stop_agreed(self.control):
            return
        use_gan = teacher is None or (
            agreement is not None and agreement >= pipe.min_agreement
            and sameness <= pipe.max_sameness
        )
        self.metrics.append({"step": self.step, "event": "segmenter-source", "stage": stage.name,
                             "agreement": agreement, "sameness": sameness, "gan_pairs": use_gan})
        if teacher is None:
            sampler, detail = pair_sources.generated_pairs(self.method), "generated pairs"
        elif use_gan:
            assert photos is not None
            sampler = pair_sources.mixed(pair_sources.generated_pairs(self.method), photos,
                                         pipe.real_mix)
            detail = (f"generated pairs + labelled photos (agreement {agreement:.2f})"
                      if pipe.real_mix > 0 else f"generated pairs (agreement {agreement:.2f})")
        else:
            assert photos is not None
            sampler = photos
            detail = f"labelled photos only (agreement {agreement:.2f}, sameness {sameness:.2f})"
            why = (
                f"disagree with the label-free prior (IoU {agreement:.2f} < {pipe.min_agreement:.2f})"
                if agreement is None or agreement < pipe.min_agreement
                else f"are one shape for every latent code (sameness {sameness:.2f} > "
                f"{pipe.max_sameness:.2f}: a box, not objects)"
            )
            yield WarningEvent(
                self.step,
                f"{stage.name}: the generator's masks {why}, so its pairs are not used this time; "
                "the segmenter keeps learning from the prior's masks of your photos",
                kind="layers",
            )
        yield PhaseChanged(self.step, stage.name, detail)
        if teacher is not None and isinstance(teacher, UNet) and teacher.config == prior_config():
            start = copy.deepcopy(teacher).train().requires_grad_(True)
        else:
            start = UNet(prior_config())
        steps = None if stage.budget_s is not None else pipe.segmenter_steps
        budget = stage.budget_s
        if budget is not None:  # relabelling came out of this stage's time; fitting keeps half
            budget = max(budget - (time.perf_counter() - t_stage), budget / 2)
        unet = yield from fit_unet(
            sampler, start, self.device, budget, steps,
            pipe.segmenter_batch, self.control, stage.name, self.step,
        )
        if self.control.stop_requested:
            return
        unet.eval().requires_grad_(False)
        if distributed.is_main():
            # The stage's own copy first: a run killed after segmenter.pt is replaced but before
            # the stage's checkpoint redoes this stage, and must start it from the previous
            # stage's segmenter, not from this one (see _load_stage_segmenter).
            for path in (self._stage_segmenter_path(stage.name), self.run_dir / "segmenter.pt"):
                save_segmenter(path, unet, self.config.size, self.config.method,
                               Path(self.config.folder).name)
        self.segmenter = unet

    def _agreement_with(self, judge: Any) -> float:
        assert self.method is not None
        return pair_sources.agreement(self.method, judge, self.seed + 7)

    def _mask_sameness(self) -> float:
        assert self.method is not None
        return pair_sources.generated_sameness(self.method, self.seed + 13)

    def _photo_pairs(self, teacher: Any, stage: Stage) -> Generator[Event, None, pair_sources.Sampler]:
        """The user's photos labelled by ``teacher``; GrabCut-refined when the pipeline says so."""
        if self.config.pipeline.refine_labels:
            from engine.segmenter.bootstrap import make_sampler
            from engine.segmenter.relabel import refined_labels

            labels = None
            if distributed.is_main():  # under torchrun rank 0 refines, the others receive it
                labels = yield from refined_labels(self.dataset.cache, teacher, self.config.size,
                                                   self.device, self.control, stage.name, self.step)
            labels = distributed.broadcast_object(labels)
            if labels is not None:
                return make_sampler(*labels, self.config.size, seed=self.seed + 11)
        return pair_sources.labelled_photos(self.dataset, teacher, self.device, self.seed + 11)

    def _stage_segmenter_path(self, stage_name: str) -> Path:
        return ckpt.checkpoint_dir(self.run_dir) / f"segmenter-{stage_name}.pt"

    def _prior_path(self) -> Path:
        return self.run_dir / "bootstrap" / "prior.pt"

    def _load_stage_segmenter(self) -> None:
        """After a resume: the segmenter the current stage uses for L_bg (prior or latest fit)."""
        from engine.segmenter.model import load_segmenter

        done = {s.kind for s in self.stages[: self.stage_index]}
        fitted = [s.name for s in self.stages[: self.stage_index] if s.kind == "segmenter"]
        path = None
        if fitted and self._stage_segmenter_path(fitted[-1]).exists():
            path = self._stage_segmenter_path(fitted[-1])
        elif "segmenter" in done and (self.run_dir / "segmenter.pt").exists():
            path = self.run_dir / "segmenter.pt"  # a run from before the per-stage copies
        elif "bootstrap" in done and self._prior_path().exists():
            path = self._prior_path()
        # Building a net draws its random init from the global RNG, which the checkpoint has just
        # restored: fork it so that a resumed run draws what the uninterrupted one would. And
        # channels_last, as fit_unet left the nets in the run that trained them: conv kernels
        # differ by memory format in the last bit, which a GAN amplifies into other weights.
        with torch.random.fork_rng(devices=[]):
            if path is not None:
                self.segmenter = load_segmenter(path, self.device)[0].to(
                    memory_format=torch.channels_last)
            if "bootstrap" in done and self._prior_path().exists():
                self.prior = load_segmenter(self._prior_path(), self.device)[0].to(
                    memory_format=torch.channels_last)


def stats_of(method: LayeredGan, codes: torch.Tensor) -> MaskStats:
    """Mask statistics of the live generator (not the EMA: the guard must see collapse early)."""
    return mask_stats(method.sample(codes, ema=False).mask)
