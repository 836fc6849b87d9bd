"""What every layered-GAN method shares: the two generators, the discriminator, EMA, optimisers,
mixed precision, the optional segmenter prior and (de)serialisation for checkpoints.

A method subclass only says how a batch of codes is drawn, which extra heads it has and what its
D and G losses are. The trainer talks to methods through ``LayeredGan`` alone.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

from engine.augment import diff_augment, sample_diff_augment
from engine.compose import composite
from engine.config import RunConfig
from engine.device import autocast as device_autocast
from engine.device import prepare_cuda, to_device
from engine.losses import (
    background_prior,
    gradient_penalty,
    mask_outside_prior,
    sample_interpolation,
    wgan_d,
)
from engine.nets.discriminator import Discriminator
from engine.nets.generator import BackgroundGenerator, ForegroundGenerator
from engine.parallel import distributed

CHANNELS_LAST = torch.channels_last
Drawn = TypeVar("Drawn")


@dataclass
class Sample:
    """One generated batch: background, foreground, mask in [0, 1], composite (no perturbation)."""

    background: torch.Tensor
    foreground: torch.Tensor
    mask: torch.Tensor
    composite: torch.Tensor


class LayeredGan:
    name = "base"
    has_size_floor = False  # True where a per-sample size hinge reads ``size_floor``

    def __init__(self, config: RunConfig, device: torch.device) -> None:
        self.config = config
        self.device = device
        prepare_cuda(device)
        net = config.net
        self.z_dim = net.z_dim
        self.bg = BackgroundGenerator(net.z_dim, config.size, net.g_width, net.upsample)
        self.fg = ForegroundGenerator(self.code_dim, config.size, net.g_width, net.upsample)
        self.disc = Discriminator(config.size, net.d_width)
        self.g_extra: dict[str, nn.Module] = {}
        self.d_extra: dict[str, nn.Module] = {}
        self.build_heads()
        for m in self._trained_modules().values():
            m.to(device, memory_format=CHANNELS_LAST)
            distributed.convert_batch_norm(m)  # global batch statistics under torchrun
        self.ema_bg = copy.deepcopy(self.bg).eval().requires_grad_(False)
        self.ema_fg = copy.deepcopy(self.fg).eval().requires_grad_(False)
        lr_g, lr_d, betas = self.optimiser_settings()
        g_params = [p for m in (self.bg, self.fg, *self.g_extra.values()) for p in m.parameters()]
        d_params = [p for m in (self.disc, *self.d_extra.values()) for p in m.parameters()]
        self.opt_g = torch.optim.Adam(g_params, lr=lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(d_params, lr=lr_d, betas=betas)
        self.segmenter: nn.Module | None = None
        self.bg_weight = 0.0
        self.mask_prior_weight = 0.0
        self.size_floor: float | None = None  # set from the photos (engine/train/size_floor.py)
        self.steps_done = 0  # drives EMA warm-up and loss ramps; restored from checkpoints
        self.nonfinite: str | None = None  # set by a step whose loss was NaN/inf (not applied)

    # -- what subclasses provide -------------------------------------------------------------
    @property
    def code_dim(self) -> int:
        """Input size of the foreground generator (z, plus any private code)."""
        return self.z_dim

    def build_heads(self) -> None:
        """Create extra modules into ``self.g_extra`` / ``self.d_extra``."""

    def optimiser_settings(self) -> tuple[float, float, tuple[float, float]]:
        raise NotImplementedError

    def make_fake(self, n: int) -> dict[str, torch.Tensor]:
        """One generated, perturbed batch; key ``fake`` is the composite D sees."""
        raise NotImplementedError

    def d_loss(self, real: torch.Tensor, fake: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Loss terms of the D step (use ``fake`` detached); ``d_total`` is minimised."""
        raise NotImplementedError

    def g_loss(self, fake: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Loss terms of the G step; ``g_total`` is minimised."""
        raise NotImplementedError

    # -- shared machinery ---------------------------------------------------------------------
    def sample_codes(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, code_dim) unit Gaussian codes: [z | private code]."""
        if generator is not None:
            return torch.randn(n, self.code_dim, generator=generator).to(self.device)
        return distributed.rows(n, lambda m: torch.randn(m, self.code_dim)).to(self.device)

    def draw(self, n: int, sample: Callable[[int], Drawn]) -> Drawn:
        """``sample(m)``'s random draws (an augmentation's parameters) for this process's ``n``
        rows: under torchrun drawn for the global batch, so each sample gets the same numbers at
        any process count (the tensor functions in ``engine.augment`` / ``engine.losses`` only
        apply what they are given)."""
        return distributed.rows(n, sample)

    def diff_augment(self, x: torch.Tensor) -> torch.Tensor:
        """DiffAugment with fresh parameters for ``x`` (real or fake, D or G step)."""
        n, _, h, w = x.shape
        return diff_augment(x, self.draw(n, lambda m: sample_diff_augment(m, h, w, x.device, x.dtype)))

    def critic_terms(
        self, real: torch.Tensor, fake: torch.Tensor, drift: float, gp_weight: float
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """WGAN-GP critic loss on DiffAugmented ``real`` / ``fake`` (pass ``fake`` detached).

        Returns the terms (``d_total`` = adversarial + penalty) and the critic's features of the
        fakes, for heads that share its backbone. The penalty's double backward is kept in
        float32: bf16 gradients of gradients are noisy.
        """
        real_a, fake_a = self.diff_augment(real), self.diff_augment(fake)
        real_scores, _ = self.disc(real_a)
        fake_scores, feats = self.disc(fake_a)
        adv = wgan_d(real_scores, fake_scores, drift)
        with torch.autocast(self.device.type, enabled=False):
            eps = self.draw(real_a.shape[0], lambda rows: sample_interpolation(
                rows, real_a.device, torch.float32))
            gp = gradient_penalty(lambda x: self.disc(x)[0], real_a.float(), fake_a.float(), eps)
        return {"d_total": adv + gp_weight * gp, "d_adv": adv, "gp": gp}, feats

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bf16 autocast on CUDA when supported (no GradScaler needed); full precision otherwise."""
        return device_autocast(self.device)

    def layers(self, codes: torch.Tensor, ema: bool = False) -> tuple[torch.Tensor, ...]:
        """(B, F, mask) for ``codes``; the mask is sigmoid of the logits, in float32."""
        bg, fg = (self.ema_bg, self.ema_fg) if ema else (self.bg, self.fg)
        b = bg(codes[:, : self.z_dim])
        f, logits = fg(codes)
        return b, f, torch.sigmoid(logits.float())

    def bg_prior_loss(self, background: torch.Tensor) -> torch.Tensor | None:
        if self.segmenter is None or self.bg_weight <= 0:
            return None
        return background_prior(self.segmenter(background))

    def with_shared_g_terms(
        self, total: torch.Tensor, terms: dict[str, torch.Tensor], background: torch.Tensor,
        mask: torch.Tensor, seen: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Add what every method's G step shares (the segmenter priors) and the totals.

        ``seen``: (composite D sees, the mask inside it), for the mask-side prior.
        """
        bg = self.bg_prior_loss(background)
        if bg is not None:
            total = total + self.bg_weight * bg
            terms["bg_prior"] = bg
        if self.segmenter is not None and self.mask_prior_weight > 0 and seen is not None:
            with torch.no_grad():
                verdict = self.segmenter(seen[0].detach())
            outside = mask_outside_prior(seen[1], verdict)
            total = total + self.mask_prior_weight * outside
            terms["mask_prior"] = outside
        terms["g_total"] = total
        terms["coverage"] = mask.mean()
        return terms

    def set_segmenter(
        self, segmenter: nn.Module | None, weight: float, mask_weight: float = 0.0
    ) -> None:
        """Freeze ``segmenter`` and use it for L_bg (and the mask-side prior) in every later G step
        (None turns both off)."""
        if segmenter is not None:
            segmenter = segmenter.to(self.device).eval().requires_grad_(False)
        self.segmenter = segmenter
        self.bg_weight = weight if segmenter is not None else 0.0
        self.mask_prior_weight = mask_weight if segmenter is not None else 0.0

    def set_size_floor(self, floor: float | None) -> None:
        """The lower bound of the per-sample size hinge (None: the configured one)."""
        self.size_floor = floor

    def step(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        """One D step and one G step on the global batch ``real``; returns detached loss terms.

        Under torchrun each process trains on its rows of ``real``, draws its randomness for the
        global batch, averages gradients, and returns the terms averaged over processes
        (engine/parallel/distributed.py); alone, it is ``_step(real)``.
        """
        with distributed.sharded_draws():
            terms = distributed.mean_terms(self._step(distributed.shard(real)))
        if self.nonfinite is None and distributed.world().active:
            # A rank whose own losses were finite stepped with gradients averaged with another
            # rank's NaN; judging the averaged terms makes every rank report the same step.
            self.nonfinite = next(
                (f"{k} is {float(terms[k])}" for k in ("d_total", "g_total")
                 if k in terms and not math.isfinite(float(terms[k]))), None,
            )
        return terms

    def _step(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        """One D step and one G step; returns detached loss terms.

        Both steps share one generated batch (D sees it detached): a second generator forward
        would cost ~20% of the step on a CPU for no measurable benefit.

        A non-finite D or G total stops the step before its optimiser update (Adam's moments
        would carry the NaN into every later step): ``nonfinite`` then names the loss, no weight,
        optimiser state or EMA changes, and the trainer restores its last good checkpoint. The
        check reads two scalars back to the host: 8 us on a CPU, < 0.001 % of a 64 px step
        (bench/RESULTS.md, "Crash safety"). Every loss is still computed and every gradient
        average still runs, so processes under torchrun stay in step with each other.
        """
        self.nonfinite = None
        real = to_device(real, self.device).contiguous(memory_format=CHANNELS_LAST)
        self._train_mode(True)
        self.disc.requires_grad_(True)
        for m in self.d_extra.values():
            m.requires_grad_(True)
        self.opt_d.zero_grad(set_to_none=True)
        with self.autocast():
            fake = self.make_fake(real.shape[0])
            d_terms = self.d_loss(real, fake)
        d_terms["d_total"].backward()
        distributed.average_grads(self.opt_d)
        self.nonfinite = _non_finite("d_total", d_terms["d_total"])
        if self.nonfinite is None:
            self.opt_d.step()

        self.disc.requires_grad_(False)
        for m in self.d_extra.values():
            m.requires_grad_(False)
        self.opt_g.zero_grad(set_to_none=True)
        with self.autocast():
            g_terms = self.g_loss(fake)
        g_terms["g_total"].backward()
        distributed.average_grads(self.opt_g)
        if self.nonfinite is None:
            self.nonfinite = _non_finite("g_total", g_terms["g_total"])
        if self.nonfinite is None:
            self.opt_g.step()
            self.steps_done += 1
            self.update_ema()
        return {k: v.detach().float() for k, v in {**d_terms, **g_terms}.items()}

    def update_ema(self) -> None:
        """EMA of G weights; the decay ramps up early so the EMA is not stuck near the init."""
        t = self.steps_done
        decay = min(self.config.ema_decay, (1 + t) / (10 + t))
        with torch.no_grad():
            for live, ema in ((self.bg, self.ema_bg), (self.fg, self.ema_fg)):
                # One fused call per net instead of one kernel launch per parameter (GPU).
                params = list(ema.parameters()), list(live.parameters())
                if params[0]:
                    torch._foreach_lerp_(params[0], params[1], 1 - decay)
                buffers = list(ema.buffers()), list(live.buffers())
                if buffers[0]:
                    torch._foreach_copy_(buffers[0], buffers[1])

    @torch.no_grad()
    def sample(self, codes: torch.Tensor, ema: bool = True) -> Sample:
        """Generate without perturbation, for previews, statistics and segmenter pairs."""
        was_training = self.bg.training
        self._train_mode(False)
        try:
            with self.autocast():
                b, f, m = self.layers(codes.to(self.device), ema=ema)
            b, f = b.float(), f.float()
            return Sample(b, f, m, composite(b, f, m))
        finally:
            self._train_mode(was_training)

    def _train_mode(self, on: bool) -> None:
        for m in self._trained_modules().values():
            m.train(on)

    def _trained_modules(self) -> dict[str, nn.Module]:
        return {"bg": self.bg, "fg": self.fg, "disc": self.disc, **self.g_extra, **self.d_extra}

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {k: m.state_dict() for k, m in self._trained_modules().items()}
        state["ema_bg"] = self.ema_bg.state_dict()
        state["ema_fg"] = self.ema_fg.state_dict()
        state["opt_g"] = self.opt_g.state_dict()
        state["opt_d"] = self.opt_d.state_dict()
        state["steps_done"] = self.steps_done
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, m in self._trained_modules().items():
            m.load_state_dict(state[k])
        self.ema_bg.load_state_dict(state["ema_bg"])
        self.ema_fg.load_state_dict(state["ema_fg"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.steps_done = int(state["steps_done"])

    def parameters_g(self) -> Iterator[nn.Parameter]:
        yield from self.bg.parameters()
        yield from self.fg.parameters()


def _non_finite(name: str, total: torch.Tensor) -> str | None:
    """``"NAME is nan"`` when the scalar loss ``total`` is NaN or infinite, else None."""
    value = float(total.detach())
    return None if math.isfinite(value) else f"{name} is {value}"
