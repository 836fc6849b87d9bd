"""ReDO (Chen, Artières & Denoyer 2019): segment real photos by redrawing one region at a time.

A mask net splits a real photo into object (m) and background (1 − m). One region is redrawn by its
own generator from noise z and pasted back over the photo; the result must fool a hinge-loss
discriminator. The mask net can only win by cutting along real object outlines: a wrong cut leaves
half an object beside a redrawn region, which the discriminator sees. A second network δ recovers z
from the result (information conservation), so an empty region, where z leaves no trace, is
penalised. Unlike the layered GANs, the mask net reads *real* photos, so it is the segmenter itself
and no synthetic pairs or UNet are needed.

Departures from the paper (each measured or forced by the CPU; bench/RESULTS.md, "ReDO"):
- a warm start (``RedoSettings.warm_start``; ``--no-bootstrap`` leaves it out): the mask net first learns GrabCut's masks of the
  photos (the labels Peel's prior learns), then the adversarial game refines it. Cold, the mask net
  was still a blotch over half of each photo after the steps a CPU gives in minutes (demo 0.33,
  horses 0.26, flowers 0.44); the paper trains tens of thousands of GPU steps. A restart after a
  collapse starts the mask net again from its warm weights;
- an anchor (``RedoSettings.anchor``): a BCE term keeps the mask net's masks near the warm
  start's (a frozen copy), because on a CPU budget the game alone lowered the warm start (flowers,
  30 min: 0.921 to 0.856);
- smaller nets (mask net width 16, generators 16, critics 16; no self-attention), 64 px by default;
- the restart rule is checked every ``restart_every`` steps during the first ``restart_until``
  steps (paper: every 500 during the first ~7,000 of a much longer GPU run);
- the two regions are interchangeable, so the saved segmenter's polarity is chosen without labels:
  "object" is the region that covers less of the photo border (the photographer's bias, the same
  prior the latent-direction method uses). The paper picked the permutation with ground truth.

Entry point (the method registry's): ``train_redo_run(RunConfig(method="redo", ...), control,
resume)``; ReDO's own settings are the config's ``redo`` section (``engine.config.RedoSettings``).
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from engine.config import RunConfig, resume_mismatch
from engine.control import RunControl
from engine.data import RandomCropDataset, load_training_photos, to_tensor, to_uint8
from engine.device import configure_cpu_threads, describe, pick_device
from engine.errors import InputError, failed_event
from engine.events import (
    CheckpointSaved,
    Event,
    Finished,
    PhaseChanged,
    Preview,
    Started,
    WarningEvent,
)
from engine.loop import Budget, run_steps
from engine.nets.redo_nets import Critic, MaskNet, MaskNetConfig, RegionGenerator, orthogonal_init
from engine.runs import checkpoint as ckpt
from engine.runs.checkpoint import CheckpointError
from engine.runs.folder import RunFolder
from engine.runs.metrics_log import MetricsLog
from engine.runs.previews import write_grid
from engine.segmenter import bootstrap
from engine.segmenter.fit import fit_unet

log = logging.getLogger(__name__)

METHOD = "redo"
REGIONS = 2  # object, background
GUARD_IMAGES = 32
BORDER = 0.125  # fraction of the side counted as "border" when choosing the polarity
WARM_PHASE = "warm-start"
WARM_MAX_STEPS = 400  # --steps N: the warm start fits min(N, this) steps on 4N photos


class RedoError(Exception):
    """A failure with a message meant for the user."""


class Redo:
    """The five networks and their optimisers; one ``step`` is one D update and one G update."""

    def __init__(self, config: RunConfig, device: torch.device) -> None:
        self.config = config.redo
        self.device = device
        c = config.redo
        self.mask_net = MaskNet(MaskNetConfig(width=c.mask_width))
        self.gens = torch.nn.ModuleList(RegionGenerator(c.z_dim, c.gen_width) for _ in range(REGIONS))
        self.disc = Critic(config.size, 1, c.critic_width)
        self.delta = Critic(config.size, REGIONS * c.z_dim, c.critic_width)
        for net in self._nets().values():
            orthogonal_init(net, c.init_gain)
            net.to(device, memory_format=torch.channels_last)
        betas = (c.beta1, c.beta2)
        self.opt_g = torch.optim.Adam(
            [
                {"params": self.mask_net.parameters(), "lr": c.lr_mask,
                 "weight_decay": c.mask_weight_decay},
                {"params": [*self.gens.parameters(), *self.delta.parameters()], "lr": c.lr},
            ],
            betas=betas,
        )
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=c.lr, betas=betas)
        self.lambda_z = c.lambda_z / (REGIONS * c.z_dim)
        self.anchor_net: MaskNet | None = None  # the warm start's mask net, frozen (set_anchor)

    def set_anchor(self, warm_state: dict[str, torch.Tensor] | None) -> None:
        """Keep the mask net's masks near those of the mask net in ``warm_state`` (the warm
        start's), at ``RedoSettings.anchor``; None or a weight of 0: the paper's game alone."""
        if warm_state is None or self.config.anchor <= 0:
            self.anchor_net = None
            return
        net = MaskNet(MaskNetConfig(width=self.config.mask_width))
        net.load_state_dict(warm_state)
        self.anchor_net = net.to(self.device, memory_format=torch.channels_last).eval()
        self.anchor_net.requires_grad_(False)

    def _nets(self) -> dict[str, torch.nn.Module]:
        return {"mask_net": self.mask_net, "gens": self.gens, "disc": self.disc, "delta": self.delta}

    def masks(self, images: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.mask_net(images).float())

    def redraw(
        self, images: torch.Tensor, mask: torch.Tensor, region: int, z: torch.Tensor
    ) -> torch.Tensor:
        """Replace region ``region`` (0 = m, 1 = 1 − m) of ``images`` by its generator's drawing."""
        region_mask = mask if region == 0 else 1 - mask
        drawn = self.gens[region](region_mask, z)
        return region_mask * drawn + (1 - region_mask) * images

    def step(
        self, real: torch.Tensor, inputs: torch.Tensor, g_inputs: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """One D step (``real`` vs redraws of ``inputs``) and one G + δ step (redraws of ``g_inputs``)."""
        c, n = self.config, real.shape[0]
        cl = torch.channels_last
        real, inputs, g_inputs = (t.to(self.device).contiguous(memory_format=cl) for t in (real, inputs, g_inputs))
        for net in self._nets().values():
            net.train()

        region = random.randrange(REGIONS)
        z = torch.randn(n, c.z_dim, device=self.device)
        with torch.no_grad():
            fake = self.redraw(inputs, self.masks(inputs), region, z)
        self.disc.requires_grad_(True)
        d_real = F.relu(1 - self.disc(real)).mean()
        d_fake = F.relu(1 + self.disc(fake)).mean()
        self.opt_d.zero_grad(set_to_none=True)
        (d_real + d_fake).backward()
        self.opt_d.step()

        self.disc.requires_grad_(False)
        region = random.randrange(REGIONS)
        z = torch.randn(n, c.z_dim, device=self.device)
        logits = self.mask_net(g_inputs).float()
        mask = torch.sigmoid(logits)
        fake = self.redraw(g_inputs, mask, region, z)
        adv = -self.disc(fake).mean()
        z_hat = self.delta(fake).view(n, REGIONS, c.z_dim)[:, region]
        info = ((z_hat - z) ** 2).sum(1).mean()
        total = adv + self.lambda_z * info
        terms: dict[str, torch.Tensor] = {}
        if self.anchor_net is not None:
            with torch.no_grad():
                target = torch.sigmoid(self.anchor_net(g_inputs).float())
            anchor = F.binary_cross_entropy_with_logits(logits, target)
            total = total + c.anchor * anchor
            terms["anchor"] = anchor.detach()
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        self.opt_g.step()
        # Tensors, read by the loop only when it reports: a float() here would wait for the GPU
        # every step.
        return {
            "d_real": d_real.detach(), "d_fake": d_fake.detach(), "g_adv": adv.detach(),
            "z_error": info.detach() / c.z_dim, "coverage": mask.detach().mean(), **terms,
        }

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {k: m.state_dict() for k, m in self._nets().items()}
        state["opt_g"] = self.opt_g.state_dict()
        state["opt_d"] = self.opt_d.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, m in self._nets().items():
            m.load_state_dict(state[k])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])


def region_balance(mask: torch.Tensor) -> float:
    """min(mean m, mean 1 − m): below ``min_region`` one region is (nearly) empty."""
    mean = float(mask.mean())
    return min(mean, 1 - mean)


def choose_polarity(mask: torch.Tensor) -> float:
    """+1 if region m is the object, −1 if it is the background: the object is the region that
    covers more of the centre than of the border (photos are framed around their subject)."""
    h, w = mask.shape[-2:]
    bh, bw = max(1, round(h * BORDER)), max(1, round(w * BORDER))
    border = torch.ones(h, w, dtype=torch.bool, device=mask.device)
    border[bh : h - bh, bw : w - bw] = False
    m = mask.float().mean(dim=(0, 1))
    return 1.0 if float(m[border].mean()) <= float(m[~border].mean()) else -1.0


def train_redo_run(
    config: RunConfig, control: RunControl | None = None, resume: bool = False
) -> Iterator[Event]:
    """Train ReDO on ``config.folder`` into ``config.out`` (the registry's entry; its own settings
    are ``config.redo``); yields events, never raises.

    Writes config.json (the RunConfig), metrics.jsonl, previews/, checkpoints/ and, when the
    budget is spent, segmenter.pt (the mask net, kind "redo").
    """
    run = _RedoRun(config, control or RunControl())
    try:
        yield from run.execute(resume)
    except Exception as exc:
        yield failed_event(exc, run.step, (RedoError, CheckpointError), log)


class _RedoRun:
    def __init__(self, config: RunConfig, control: RunControl) -> None:
        self.config = config
        self.control = control
        self.run_dir = Path(config.out)
        self.metrics = MetricsLog(self.run_dir / "metrics.jsonl")
        self.step = 0
        self.elapsed = 0.0
        self.restarts = 0
        self.seed = config.seed
        self.gave_up = False  # the "restarts used up" warning is said once
        self.warm_state: dict[str, torch.Tensor] | None = None  # the mask net after its warm start

    def execute(self, resume: bool) -> Generator[Event, None, None]:
        cfg = self.config
        configure_cpu_threads(cfg.threads)
        self.device, device_warning = pick_device(cfg.device)
        payload = self._resume_payload() if resume else None
        if payload is None and ckpt.list_checkpoints(self.run_dir):
            raise InputError(f"{self.run_dir} already holds a run; resume it or choose a new folder")
        cache, bad = load_training_photos(cfg.folder, cfg.size)
        RunFolder(self.run_dir).write_config(cfg)  # only once there are photos to train on
        self.dataset = RandomCropDataset(cache, cfg.size)
        self.fixed = self._fixed_images(cache.images)
        self._start(self.seed)
        if payload is not None:
            self.model.load_state_dict(payload["model"])
            ckpt.restore_rng(payload["rng"], self.data_rng)
            self.step, self.elapsed = int(payload["step"]), float(payload["elapsed"])
            self.restarts, self.seed = int(payload["restarts"]), int(payload["seed"])
            self.warm_state = payload.get("warm_mask_net")
            self.model.set_anchor(self.warm_state)
            self.metrics.truncate_after(self.step)
        yield Started(step=self.step, device=describe(self.device), method=METHOD, phase=METHOD,
                      config=cfg.to_dict(), total_steps=cfg.steps)
        if device_warning:
            yield WarningEvent(self.step, device_warning)
        for line in bad[:10]:
            yield WarningEvent(self.step, f"skipped {line}", kind="bad-file")
        if payload is None and cfg.redo.warm_start > 0 and cfg.pipeline.bootstrap:
            yield from self._warm_start(cache)
        yield PhaseChanged(self.step, METHOD, "mask net + region-redrawing GAN (ReDO)")
        yield from self._train()
        if self.step % cfg.checkpoint_every != 0 or self.step == 0:
            yield self._checkpoint()
        if self.control.stop_requested:
            yield Finished(self.step, str(self.run_dir), stopped=True, summary=self._summary())
            return
        yield PhaseChanged(self.step, "segmenter", "saving the mask net as the segmenter")
        summary = self._save_segmenter()
        yield Finished(self.step, str(self.run_dir), stopped=False, summary=summary)

    def _warm_start(self, cache: Any) -> Generator[Event, None, None]:
        """The mask net learns GrabCut's masks of the photos before the game (module docstring);
        its time counts in the run's budget."""
        cfg, t0 = self.config, time.perf_counter()
        seconds = cfg.redo.warm_start * cfg.minutes * 60 if cfg.minutes is not None else None
        steps = None if cfg.steps is None else min(WARM_MAX_STEPS, max(2, cfg.steps))
        photos = None if cfg.steps is None else 4 * cfg.steps
        yield PhaseChanged(self.step, WARM_PHASE, "the mask net learns GrabCut's masks first")
        sample = yield from bootstrap.grabcut_sampler(
            cache, self.run_dir / "bootstrap" / "masks", cfg.size,
            seconds if seconds is not None else math.inf, self.control, self.step, photos)
        if sample is not None and not self.control.stop_requested:
            left = None if seconds is None else max(0.0, seconds - (time.perf_counter() - t0))
            yield from fit_unet(sample, self.model.mask_net, self.device, left, steps,
                                bootstrap.BATCH, self.control, WARM_PHASE, self.step)
            self.warm_state = {k: v.detach().clone()
                               for k, v in self.model.mask_net.state_dict().items()}
            self.model.set_anchor(self.warm_state)
        self.elapsed += time.perf_counter() - t0

    def _fixed_images(self, images: np.ndarray) -> torch.Tensor:
        """Centre crops of up to GUARD_IMAGES photos: the guard's and the previews' inputs."""
        s = self.config.size
        off = (images.shape[1] - s) // 2
        idx = np.linspace(0, len(images) - 1, min(GUARD_IMAGES, len(images))).round().astype(int)
        return to_tensor(images[idx, off : off + s, off : off + s])

    def _start(self, seed: int) -> None:
        """(Re)initialise every net and RNG from ``seed``: used at the start and on restart."""
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        self.data_rng = np.random.default_rng(seed)
        self.model = Redo(self.config, self.device)
        self.preview_z = torch.randn(self.config.preview_count, self.config.redo.z_dim,
                                     generator=torch.Generator().manual_seed(self.config.seed + 1))

    def _resume_payload(self) -> dict[str, Any] | None:
        saved_path = self.run_dir / "config.json"
        if not saved_path.exists():
            raise InputError(f"nothing to resume in {self.run_dir} (no config.json)")
        try:  # RunConfig.from_dict also reads the flat config of a ReDO run from before
            saved = RunConfig.from_dict(json.loads(saved_path.read_text(encoding="utf-8")))
        except (ValueError, TypeError) as exc:
            raise InputError(f"{saved_path} is not a ReDO run configuration ({exc})") from exc
        diff = resume_mismatch(saved, self.config)
        if diff:
            raise InputError("cannot resume: the run was trained differently (" + "; ".join(diff) + ")")
        found = ckpt.list_checkpoints(self.run_dir)
        return ckpt.load(found[-1]) if found else None

    def _train(self) -> Generator[Event, None, None]:
        cfg = self.config
        seconds = cfg.minutes * 60 if cfg.minutes is not None else None
        budget = Budget.resumed(seconds, cfg.steps, done=self.step, elapsed_s=self.elapsed)

        def step(frac: float) -> dict[str, torch.Tensor]:
            batches = [self.dataset.sample_batch(cfg.batch, self.data_rng) for _ in range(3)]
            return self.model.step(*batches)

        def on_report(step: int, values: dict[str, float]) -> Generator[Event, None, bool]:
            self.step, self.elapsed = step, budget.elapsed_s
            if not all(math.isfinite(v) for v in values.values()):
                raise RedoError(f"losses became non-finite at step {step}: {values}")
            self.metrics.append({"step": step, "phase": METHOD,
                                 "time": round(self.elapsed, 2), **values})
            yield from ()  # nothing to say: a report only logs (on_report is a generator)
            return False

        def after_step(step: int) -> Generator[Event, None, bool]:
            self.step, self.elapsed = step, budget.elapsed_s
            if step % cfg.redo.restart_every == 0 and step <= cfg.redo.restart_until:
                restarted = yield from self._collapse_rule()
                if restarted:  # everything starts again from step 0; the clock runs on
                    budget.done = self.step
                    return True
            if step % cfg.preview_every == 0:
                yield self._preview()
            if step % cfg.checkpoint_every == 0:
                yield self._checkpoint()
            return False

        yield from run_steps(step, budget, self.control, METHOD, 0, report_every=cfg.log_every,
                             on_report=on_report, after_step=after_step)
        self.step, self.elapsed = budget.done, budget.elapsed_s
        if self.step % cfg.preview_every != 0 or self.step == 0:
            yield self._preview()

    @torch.no_grad()
    def _fixed_masks(self) -> torch.Tensor:
        self.model.mask_net.eval()
        x = self.fixed.to(self.device)
        return torch.cat([self.model.masks(x[i : i + 16]) for i in range(0, len(x), 16)])

    def _collapse_rule(self) -> Generator[Event, None, bool]:
        """The paper's restart rule: one region nearly empty early on -> start again, new seed."""
        cfg, own = self.config, self.config.redo
        balance = region_balance(self._fixed_masks())
        if balance >= own.min_region:
            return False
        if self.restarts >= own.max_restarts:
            if self.gave_up:
                return False
            self.gave_up = True
            yield WarningEvent(self.step, f"one region covers {balance:.1%} of the photos at step "
                               f"{self.step}, but the {own.max_restarts} restarts are used up; "
                               "continuing", kind="collapse")
            return False
        self.restarts += 1
        self.seed = cfg.seed + 1000 * self.restarts
        old = self.step
        self._start(self.seed)
        if self.warm_state is not None:
            self.model.mask_net.load_state_dict(self.warm_state)
        self.model.set_anchor(self.warm_state)
        self.step = 0
        message = (f"collapse at step {old}: one region covers only {balance:.1%} of the photos; "
                   f"re-initialised everything with seed {self.seed} "
                   f"(restart {self.restarts} of {own.max_restarts})")
        log.warning(message)
        self.metrics.append({"step": 0, "event": "restart", "from_step": old, "balance": balance})
        yield WarningEvent(self.step, message, kind="collapse")
        return True

    @torch.no_grad()
    def _preview(self) -> Preview:
        """Rows: photo with its background redrawn, with its object redrawn, mask, the photo."""
        n = min(self.config.preview_count, len(self.fixed))
        model = self.model
        for net in model._nets().values():
            net.eval()
        x = self.fixed[:n].to(self.device)
        mask = model.masks(x)
        z = self.preview_z[:n].to(self.device)
        arrays = {
            "background": to_uint8(model.redraw(x, mask, 1, z)),
            "foreground": to_uint8(model.redraw(x, mask, 0, z)),
            "mask": to_uint8(mask * 2 - 1),
            "composite": to_uint8(x),
        }
        path = self.run_dir / "previews" / f"step-{self.step:07d}.png"
        write_grid(path, arrays)
        return Preview(self.step, **arrays, coverage=float(mask.mean()), path=str(path))

    def _checkpoint(self) -> CheckpointSaved:
        payload = {
            "config": self.config.to_dict(), "method": METHOD, "step": self.step,
            "elapsed": self.elapsed, "restarts": self.restarts, "seed": self.seed,
            "model": self.model.state_dict(), "rng": ckpt.capture_rng(self.data_rng),
        }
        if self.warm_state is not None:
            payload["warm_mask_net"] = self.warm_state
        path = ckpt.save_rolling(self.run_dir, self.step, payload, self.config.keep_checkpoints,
                                 good=True)
        return CheckpointSaved(self.step, str(path), good=True)

    def _summary(self) -> dict[str, Any]:
        return {"steps": self.step, "restarts": self.restarts, "method": METHOD}

    def _save_segmenter(self) -> dict[str, Any]:
        masks = self._fixed_masks()
        polarity = choose_polarity(masks)
        net = self.model.mask_net
        net.polarity.fill_(polarity)
        net.eval()
        folder = RunFolder(self.run_dir)
        folder.write_segmenter(net, self.config.size, METHOD, Path(self.config.folder).name)
        coverage = float(masks.mean()) if polarity > 0 else 1 - float(masks.mean())
        summary = {**self._summary(), "polarity": polarity, "coverage": round(coverage, 4)}
        folder.write_summary(summary)
        log.info("ReDO segmenter saved (polarity %+.0f, coverage %.3f)", polarity, coverage)
        return summary
