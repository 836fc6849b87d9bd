"""Latent-direction segmenter (Melas-Kyriazi et al. 2022) on the generator of a finished Peel run.

No new GAN is trained: the composite generator G of an existing layered-GAN run (its EMA weights,
G(z) = ``LayeredGan.sample(codes).composite``) is probed for a latent direction v that changes the
brightness of the object and of the background in opposite ways while keeping every edge in place.
Such a direction exists when the generator has internally separated object from background, and
then "where did the image get brighter?" is a mask. Two directions are found (object lighter, object
darker); a pixel is object where G(z + εv_l) is brighter than G(z + εv_d). The (G(z), mask) pairs
are refined and a UNet is fitted on them, as for the layered GANs.

Conventions here (the paper's text leaves them open): the brightness loss is −λ⟨gray(G(z+εv)), r⟩
averaged over pixels, so λ > 0 brightens the centre; the edge loss is the MSE of Sobel magnitudes
divided by the mean squared magnitude of G(z) (scale-free, whatever the generator's contrast);
ε = ``epsilon_scale`` · √dim so the step is a fixed fraction of a typical code's length (the paper
used ε of a few units for a 120-d code).

Entry point (the method registry's): ``train_latentdir(RunConfig(method="latentdir", ...), control,
resume)``; ``RunConfig.latentdir.generator`` names the run whose generator is reused. Without one
the default layered GAN is trained first inside this run folder (``RUN_DIR/generator``): the run
says so, and a resume continues that GAN where it stopped.
"""

from __future__ import annotations

import copy
import logging
import math
import random
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from engine.atomic import write_with
from engine.compose import composite
from engine.config import LatentDirSettings, RunConfig
from engine.control import RunControl
from engine.data import to_uint8
from engine.device import configure_cpu_threads, describe, pick_device
from engine.errors import failed_event
from engine.events import (
    Event,
    Failed,
    Finished,
    PhaseChanged,
    Preview,
    Started,
    WarningEvent,
)
from engine.loop import Budget, run_steps
from engine.methods import LayeredGan, build_method
from engine.nets.unet import UNet
from engine.runs import checkpoint as ckpt
from engine.runs.checkpoint import CheckpointError
from engine.runs.folder import RunFolder
from engine.runs.previews import write_grid
from engine.segmenter.fit import FINETUNE_LR, SCRATCH_LR, Sampler
from engine.segmenter.samplers import labelled_photos, mixed

log = logging.getLogger(__name__)

METHOD = "latentdir"
LUMA = (0.299, 0.587, 0.114)
# Share of a --minutes budget spent finding the two directions (the rest fits the UNet).
DIRECTION_SHARE = 0.3
# Share of the user's photos (labelled by the starting segmenter) in a warm-started fit's batches.
WARM_PHOTO_SHARE = 0.5


class LatentDirError(Exception):
    """A failure with a message meant for the user."""


# -- the pieces (pure functions, tested on their own) -------------------------------------------
def gray(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W) luma in [-1, 1]."""
    w = torch.tensor(LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(1)


def sobel_edges(x: torch.Tensor) -> torch.Tensor:
    """Squared Sobel gradient magnitude summed over channels: (N, C, H, W) -> (N, H, W)."""
    k = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]], device=x.device)
    kernels = torch.stack([k, k.t()]).unsqueeze(1).to(x.dtype)  # (2, 1, 3, 3)
    n, c, h, w = x.shape
    g = F.conv2d(F.pad(x.reshape(n * c, 1, h, w), (1, 1, 1, 1), mode="replicate"), kernels)
    return (g**2).sum(1).view(n, c, h, w).sum(1)


def radial_prior(h: int, w: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(H, W): +1 at the centre falling linearly to −1 at the corners."""
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    d = torch.sqrt((yy - (h - 1) / 2) ** 2 + (xx - (w - 1) / 2) ** 2)
    return (1 - 2 * d / d.max().clamp_min(1e-6)).to(device)


def generate(method: LayeredGan, codes: torch.Tensor) -> torch.Tensor:
    """G(codes): the EMA composite, differentiable w.r.t. the codes (``sample`` is no-grad)."""
    b, f, m = method.layers(codes, ema=True)
    return composite(b.float(), f.float(), m)


def direction_loss(
    method: LayeredGan, codes: torch.Tensor, v: torch.Tensor, eps: float, lam: float,
    base: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    unit = v / v.norm().clamp_min(1e-8)
    shifted = generate(method, codes + eps * unit)
    if base is None:
        with torch.no_grad():
            base = generate(method, codes)
    e0, e1 = sobel_edges(base), sobel_edges(shifted)
    edges = ((e1 - e0) ** 2).mean() / (e0**2).mean().clamp_min(1e-8)
    r = radial_prior(*shifted.shape[-2:], device=shifted.device)
    brightness = (gray(shifted) * r).mean()
    loss = edges - lam * brightness
    return loss, {"edges": edges.detach(), "brightness": brightness.detach()}  # read at reports


@torch.no_grad()
def direction_masks(
    method: LayeredGan, codes: torch.Tensor, v_light: torch.Tensor, v_dark: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(images G(z), binary masks (N, 1, H, W), brightness change per sample (N,))."""
    image = method.sample(codes).composite
    light = gray(method.sample(codes + eps * v_light).composite)
    dark = gray(method.sample(codes + eps * v_dark).composite)
    mask = (light > dark).float().unsqueeze(1)
    change = (light - dark).abs().mean(dim=(1, 2))
    return image, mask, change


def refine_mask(mask: np.ndarray, min_share: float) -> np.ndarray:
    """Drop connected components of at most ``min_share`` × the largest one."""
    binary = (mask >= 0.5).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if count <= 2:
        return binary.astype(np.float32)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas > min_share * areas.max()) + 1
    return np.isin(labels, keep).astype(np.float32)


def refine_pairs(
    images: torch.Tensor, masks: torch.Tensor, change: torch.Tensor, config: LatentDirSettings
) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's three refinements, then the shared filter against empty/odd masks."""
    from engine.segmenter.pairs import filter_pairs

    cleaned = torch.from_numpy(np.stack([refine_mask(m, config.min_component_share)
                                         for m in masks[:, 0].cpu().numpy()])).unsqueeze(1)
    coverage = cleaned.mean(dim=(1, 2, 3))
    keep = (coverage <= config.max_coverage) & (change.cpu() >= config.min_change)
    keep &= filter_pairs(images, cleaned).cpu()
    return images[keep.to(images.device)], cleaned[keep].to(images.device)


# -- loading a run's generator ------------------------------------------------------------------
def load_generator(run_dir: str | Path, device: torch.device) -> tuple[LayeredGan, dict[str, Any]]:
    """The layered GAN of a run folder, from its newest checkpoint (the finished generator)."""
    run_dir = Path(run_dir)
    found = ckpt.list_checkpoints(run_dir)
    if not found:
        raise LatentDirError(f"{run_dir} has no checkpoints: train an ilgan or perturbgan run first")
    payload = ckpt.load(found[-1])
    try:
        config = RunConfig.from_dict(payload["config"])
    except (KeyError, ValueError, TypeError) as exc:
        raise LatentDirError(f"{run_dir} is not a layered-GAN run (ilgan or perturbgan): {exc}") from exc
    method = build_method(config, device)
    method.load_state_dict(payload["method"])
    info = {"generator_run": str(run_dir), "generator_method": config.method,
            "generator_step": int(payload["step"]), "size": config.size,
            "source": Path(config.folder).name}
    return method, info


# -- the pipeline -------------------------------------------------------------------------------
GENERATOR_DIR = "generator"  # where a run without --generator trains its layered GAN
GENERATOR_SHARE = 0.5  # of --minutes, for that GAN


def search_minutes(run: RunConfig) -> float | None:
    """The minutes of the direction search and the fit: all of ``--minutes``, or what the
    generator's training leaves when the run trains its own."""
    if run.minutes is not None and run.latentdir.generator is None:
        return run.minutes * (1 - GENERATOR_SHARE)
    return run.minutes


def train_latentdir(config: RunConfig, control: RunControl, resume: bool) -> Iterator[Event]:
    """Train the latent-direction segmenter of ``config`` (the registry's entry point)."""
    job = _Job(config, control)
    try:
        yield from job.execute(resume)
    except Exception as exc:
        yield failed_event(exc, job.step, (LatentDirError, CheckpointError), log)


def _resumed_config(run: RunConfig, out: Path) -> RunConfig:
    """A resume keeps the generator run the run was started with (the app's Resume builds its
    config from the panel, which has no generator field)."""
    from dataclasses import replace

    folder = RunFolder(out)
    if run.latentdir.generator is not None or not folder.config_path.is_file():
        return run
    saved = folder.read_config().latentdir.generator
    return replace(run, latentdir=replace(run.latentdir, generator=saved))


class _Job:
    def __init__(self, run: RunConfig, control: RunControl) -> None:
        self.run = run
        self.control = control
        self.out = Path(run.out)
        self.step = 0

    def execute(self, resume: bool) -> Generator[Event, None, None]:
        from engine.segmenter.fit import fit_unet

        run = self.run = _resumed_config(self.run, self.out) if resume else self.run
        configure_cpu_threads(run.threads)
        device, device_warning = pick_device(run.device)
        RunFolder(self.out).write_config(run)
        yield Started(step=0, device=describe(device), method=METHOD,
                      phase="directions" if run.latentdir.generator else GENERATOR_DIR,
                      config=run.to_dict(), total_steps=run.steps)
        if device_warning:
            yield WarningEvent(0, device_warning)
        generator = run.latentdir.generator
        if generator is None:
            generator = yield from self._train_generator(resume)
            if generator is None:
                return
        own = self.own = run.latentdir
        torch.manual_seed(run.seed)
        np.random.seed(run.seed)
        random.seed(run.seed)
        method, info = load_generator(generator, device)
        self.method, self.info = method, info
        dim = method.code_dim
        self.eps = own.epsilon_scale * math.sqrt(dim)
        yield WarningEvent(self.step, f"reusing the generator of {info['generator_run']} "
                           f"({info['generator_method']}, step {info['generator_step']}); "
                           "no GAN is trained", kind="info")

        minutes = search_minutes(run)
        total_s = minutes * 60 if minutes is not None else None
        dir_budget = total_s * DIRECTION_SHARE / 2 if total_s is not None else None
        directions = {}
        for name, lam in (("light", own.lam), ("dark", -own.lam)):
            v = yield from self._find(name, lam, dir_budget)
            directions[name] = v
            if self.control.stop_requested:
                yield Finished(self.step, str(self.out), stopped=True, summary={"method": METHOD})
                return
        write_with(self.out / "directions.pt", lambda fh: torch.save(
            {"light": directions["light"].cpu(), "dark": directions["dark"].cpu(), "epsilon": self.eps}, fh))
        self.v_light, self.v_dark = directions["light"], directions["dark"]
        yield self._preview()
        keep_rate = self._keep_rate()
        if keep_rate < 0.05:
            yield WarningEvent(self.step, f"only {keep_rate:.0%} of the synthetic masks pass the "
                               "refinement; the segmenter trains on unrefined masks where needed")

        seg_budget = total_s * (1 - DIRECTION_SHARE) if total_s is not None else None
        warm = self._warm_start(generator, info["size"], device)
        if warm is None:  # the paper's fit: a UNet from scratch on the direction pairs alone
            start, sampler, lr = UNet(), self._sampler(), SCRATCH_LR
        else:
            start, photos = warm
            sampler, lr = mixed(self._sampler(), photos, WARM_PHOTO_SHARE), FINETUNE_LR
            yield WarningEvent(self.step, "the segmenter starts from the generator run's and "
                               "fine-tunes on the direction pairs and your photos", kind="info")
        unet = yield from self._counted(fit_unet(
            sampler, start, device, seg_budget, run.steps, own.segmenter_batch,
            self.control, "segmenter", self.step, lr=lr))
        if self.control.stop_requested:
            yield Finished(self.step, str(self.out), stopped=True, summary={"method": METHOD})
            return
        folder = RunFolder(self.out)
        folder.write_segmenter(unet, info["size"], METHOD, info["source"])
        summary = {"method": METHOD, **info, "keep_rate": round(keep_rate, 4),
                   "warm_start": warm is not None,
                   "epsilon": round(self.eps, 4),
                   "cosine_light_dark": float(F.cosine_similarity(self.v_light, self.v_dark, dim=0))}
        folder.write_summary(summary)
        yield Finished(self.step, str(self.out), stopped=False, summary=summary)

    def _train_generator(self, resume: bool) -> Generator[Event, None, str | None]:
        """Train the default layered GAN in RUN_DIR/generator (or reuse / resume it there).

        Its events pass through (its own Started and Finished excepted: this run has one of
        each); returns the generator run folder, or None when it failed or was stopped.
        """
        from dataclasses import replace

        from engine.methods.registry import DEFAULT_METHOD, get

        gan_dir = self.out / GENERATOR_DIR
        yield WarningEvent(self.step, f"no generator run given: training {DEFAULT_METHOD} first "
                           f"in {gan_dir}, then searching its latent directions", kind="info")
        if (gan_dir / "segmenter.pt").exists():
            return str(gan_dir)  # finished by an earlier, interrupted run of this folder
        minutes = self.run.minutes
        gan = replace(self.run, method=DEFAULT_METHOD, out=str(gan_dir),
                      minutes=None if minutes is None else minutes * GENERATOR_SHARE,
                      pipeline=replace(self.run.pipeline, gan=True, min_gan_minutes=0.0))
        events = get(DEFAULT_METHOD).start(
            gan, self.control, resume and bool(ckpt.list_checkpoints(gan_dir)))
        for ev in events:
            if isinstance(ev, Started):
                continue
            self.step = max(self.step, ev.step)
            if isinstance(ev, Finished):
                if ev.stopped:
                    yield Finished(ev.step, str(self.out), stopped=True, summary={"method": METHOD})
                    return None
                return str(gan_dir)
            yield ev
            if isinstance(ev, Failed):
                return None
        return None

    def _warm_start(self, generator: str, size: int,
                    device: torch.device) -> tuple[UNet, Sampler] | None:
        """The generator run's segmenter to start from, and the user's photos labelled by it.

        Peel's departure from the paper (whose UNet starts from scratch): on a CPU's budget the
        generator is young and its direction masks are rough, and a UNet fitted on them alone
        scored what a centred box does (flowers 0.624 after 8 minutes, bench/RESULTS.md). The
        generator run already holds a segmenter (the label-free prior and its GAN pairs), so the
        fit refines that one at the fine-tuning rate, half of each batch the user's photos with
        its own masks as targets so that the synthetic pairs cannot pull it far. None (the
        paper's cold start) with ``--no-bootstrap``, or where the generator run has no
        segmenter or the photos cannot be read.
        """
        from engine.data import RandomCropDataset, load_folder
        from engine.segmenter.model import SegmenterLoadError, load_segmenter

        if not self.run.pipeline.bootstrap:
            return None
        path = RunFolder(generator).segmenter_path
        if not path.is_file():
            return None
        try:
            net, seg_info = load_segmenter(path, device)
        except SegmenterLoadError as exc:
            log.warning("latentdir: not starting from %s: %s", path, exc)
            return None
        if not isinstance(net, UNet) or seg_info.size != size:
            return None
        cache = load_folder(self.run.folder, size)
        if len(cache) == 0:
            return None
        teacher = copy.deepcopy(net).eval().requires_grad_(False)
        photos = labelled_photos(RandomCropDataset(cache, size), teacher, device, self.run.seed + 5)
        return net.train().requires_grad_(True), photos

    def _counted(self, events: Generator[Event, None, Any]) -> Generator[Event, None, Any]:
        """A fit's events, ``self.step`` following the global step it reports (it counts on from
        the step it started at), so what comes after it numbers on from there."""
        while True:
            try:
                ev = next(events)
            except StopIteration as done:
                return done.value
            self.step = max(self.step, ev.step)
            yield ev

    def _find(self, name: str, lam: float, budget_s: float | None) -> Generator[Event, None, torch.Tensor]:
        """Adam on an unconstrained vector, used through its unit direction."""
        run, own, method = self.run, self.own, self.method
        phase = f"direction-{name}"
        yield PhaseChanged(self.step, phase, f"searching the object-{name}er latent direction")
        gen = torch.Generator().manual_seed(run.seed + (1 if lam > 0 else 2))
        v = torch.randn(method.code_dim, generator=gen).to(method.device).requires_grad_(True)
        opt = torch.optim.Adam([v], lr=own.lr)

        def step(frac: float) -> dict[str, torch.Tensor]:
            codes = method.sample_codes(own.batch)
            loss, parts = direction_loss(method, codes, v, self.eps, lam)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return {"loss": loss.detach(), **parts}

        steps = None if budget_s is not None else own.direction_steps
        self.step += yield from run_steps(step, Budget(budget_s, steps), self.control, phase,
                                          self.step)
        return (v / v.norm()).detach()

    def _sampler(self) -> Any:
        own, method = self.own, self.method

        def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
            images, masks, got = [], [], 0
            for _ in range(8):
                img, mask, change = direction_masks(method, method.sample_codes(2 * n),
                                                    self.v_light, self.v_dark, self.eps)
                img, mask = refine_pairs(img, mask, change, own)
                images.append(img)
                masks.append(mask)
                got += len(img)
                if got >= n:
                    break
            if got < n:  # too few pass: fill with unrefined pairs rather than stall
                img, mask, _ = direction_masks(method, method.sample_codes(n - got),
                                               self.v_light, self.v_dark, self.eps)
                images.append(img)
                masks.append(mask)
            return torch.cat(images)[:n], torch.cat(masks)[:n]

        return sample

    def _keep_rate(self, n: int = 64) -> float:
        codes = self.method.sample_codes(n, torch.Generator().manual_seed(self.run.seed + 3))
        img, mask, change = direction_masks(self.method, codes, self.v_light, self.v_dark, self.eps)
        kept, _ = refine_pairs(img, mask, change, self.own)
        return len(kept) / n

    def _preview(self) -> Preview:
        """Rows: G(z + εv_dark), G(z + εv_light), mask, G(z)."""
        method, n = self.method, self.run.preview_count
        codes = method.sample_codes(n, torch.Generator().manual_seed(self.run.seed + 4))
        image, mask, _ = direction_masks(method, codes, self.v_light, self.v_dark, self.eps)
        arrays = {
            "background": to_uint8(method.sample(codes + self.eps * self.v_dark).composite),
            "foreground": to_uint8(method.sample(codes + self.eps * self.v_light).composite),
            "mask": to_uint8(mask * 2 - 1),
            "composite": to_uint8(image),
        }
        path = self.out / "previews" / "directions.png"
        write_grid(path, arrays)
        return Preview(self.step, **arrays, coverage=float(mask.mean()), path=str(path))

