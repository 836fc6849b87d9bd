"""PerturbGAN's way to segment real photos: train an encoder that inverts the frozen generator.

Bielski & Favaro (2019, section 3.3): once the layered generator G is trained, an encoder E is
trained so that G(E(x)) rebuilds the photo x; because G's output is layered, the foreground
generator's mask for E(x) is x's segmentation. Their loss is, on real photos,

    L_auto = |x_E - x|_1 + |D_feat(x_E) - D_feat(x)|_2^2,   x_E = (1 - G_m) G_B + G_m G_F at E(x),

with D_feat features of the trained critic. Here, as in the paper, G (the EMA copies) and the
critic are frozen, E gives separate codes to the background and the foreground generator, and
x_E has no shift (the perturbation is a training device of G only). Two terms are added on
generated samples, where the true code and mask are known (the paper does not use them):

- ``z_weight``: MSE between E(G(z)) and z for both codes. With one small encoder on a CPU budget
  (the paper trains a ResNet18 per chunk of 100 photos), pure autoencoding can rebuild a photo
  with codes far from the Gaussian the generator was trained on, where its masks mean nothing;
  regressing z keeps E on the generator's own code distribution;
- ``mask_weight``: BCE between G_m(E(G(z))) and G_m(z), the quantity the segmenter is used for.

The critic features are compared relative to their own mean square, so the perceptual term has
the same scale whatever the critic's (WGAN, unbounded) feature magnitudes became.

The stage runs after the rest of the pipeline and writes ``segmenter.pt`` of kind ``encoder``
(``engine.nets.encoder.EncoderSegmenter``); a UNet fitted earlier in the same run is kept as
``segmenter-unet.pt`` so both can be scored on the same generator.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Generator
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from engine.compose import composite
from engine.config import PerturbEncoderConfig, RunConfig
from engine.control import RunControl
from engine.data import ImageCache, to_tensor
from engine.events import Event, PhaseChanged
from engine.loop import Budget, run_steps
from engine.methods.base import LayeredGan
from engine.nets.encoder import EncoderSegmenter, EncoderSegmenterConfig
from engine.parallel import distributed
from engine.runs.folder import RunFolder

log = logging.getLogger(__name__)

STAGE_NAME = "encoder"
STAGE_KIND = "encoder"
UNET_COPY = "segmenter-unet.pt"
MIN_LR_FRACTION = 0.05
HELD_OUT = 64  # generated samples for the final code / mask recovery figures


def enabled(config: RunConfig) -> bool:
    return config.method == "perturbgan" and config.perturbgan.segmenter == "encoder"


class _StageLike(Protocol):
    name: str
    kind: str
    budget_s: float | None
    end_step: int | None
    fit_steps: int | None


def add_encoder_stage(config: RunConfig, stages: list[Any]) -> list[Any]:
    """The runner's stage plan with the encoder stage appended (unchanged when not enabled).

    In ``--minutes`` mode the encoder gets ``encoder.fraction`` of the budget and every other
    stage is scaled down to make room; in ``--steps`` mode it runs ``encoder.steps`` steps
    (its ``fit_steps``: the runner advances the run's global step by them).
    """
    if not enabled(config) or not stages:
        return stages
    frac = min(max(config.perturbgan.encoder.fraction, 0.0), 0.9)
    if config.minutes is None:
        extra = replace(stages[-1], name=STAGE_NAME, kind=STAGE_KIND, budget_s=None, end_step=None,
                        fit_steps=config.perturbgan.encoder.steps)
        return [*stages, extra]
    total = config.minutes * 60
    scaled = [replace(s, budget_s=None if s.budget_s is None else s.budget_s * (1 - frac)) for s in stages]
    extra = replace(stages[-1], name=STAGE_NAME, kind=STAGE_KIND, budget_s=total * frac, end_step=None)
    return [*scaled, extra]


def encoder_stage(run: Any, stage: _StageLike) -> Generator[Event, None, None]:
    """The runner's encoder stage: train E on the run's EMA generator, write ``segmenter.pt``.

    ``run`` is the pipeline's public ``engine.train.context.StageContext`` (method, dataset,
    device, control, step, seed, run_dir, config, metrics); only those are read. It is typed
    ``Any`` here because methods sit below the trainer (import contract).
    """
    cfg: RunConfig = run.config
    enc = cfg.perturbgan.encoder
    steps = None if stage.budget_s is not None else stage.fit_steps
    rng = np.random.default_rng(run.seed + 17)
    seg, summary = yield from train_encoder(
        run.method, real_batches(run.dataset.cache, cfg.size, rng), enc, run.device,
        stage.budget_s, steps, run.control, stage.name, run.step, seed=run.seed + 19,
    )
    if run.control.stop_requested:
        return
    run.metrics.append({"step": run.step, "event": "encoder", **summary})
    if not distributed.is_main():  # under torchrun rank 0 alone writes the run folder
        return
    # The run's UNet, if any, is kept beside it for comparison (both writes are atomic).
    RunFolder(run.run_dir).write_segmenter(seg, cfg.size, cfg.method, Path(cfg.folder).name,
                                           keep_previous_as=UNET_COPY)


def real_batches(
    cache: ImageCache, size: int, rng: np.random.Generator
) -> Callable[[int], torch.Tensor]:
    """Real photos as inference sees them: the whole (square) photo at ``size``, not a crop.

    The cache holds each photo at 1.125 x ``size``; a random square of side in [size, cache side]
    is resized to ``size`` (mild scale / position jitter) and flipped half of the time.
    """
    side = cache.images.shape[1]

    def sample(n: int) -> torch.Tensor:
        idx = rng.integers(0, len(cache), size=n)
        out = np.empty((n, size, size, 3), np.uint8)
        for k, i in enumerate(idx):
            s = int(rng.integers(size, side + 1))
            top, left = rng.integers(0, side - s + 1, size=2)
            crop = cache.images[i, top : top + s, left : left + s]
            img = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA) if s != size else crop
            out[k] = img[:, ::-1] if rng.random() < 0.5 else img
        return to_tensor(out)

    return sample


def build_segmenter(method: LayeredGan, width: int) -> EncoderSegmenter:
    """A fresh encoder beside a copy of the method's EMA foreground generator (frozen, eval)."""
    net = method.config.net
    seg = EncoderSegmenter(EncoderSegmenterConfig(
        size=method.config.size, width=width, z_dim=method.z_dim, g_width=net.g_width,
        upsample=net.upsample,
    ))
    seg.fg.load_state_dict(method.ema_fg.state_dict())
    seg.fg.eval().requires_grad_(False)
    return seg


def _relative_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(a, b) / (b.detach().pow(2).mean() + 1e-8)


def train_encoder(
    method: LayeredGan,
    real: Callable[[int], torch.Tensor] | None,
    enc: PerturbEncoderConfig,
    device: torch.device,
    budget_s: float | None,
    steps: int | None,
    control: RunControl,
    phase: str = STAGE_NAME,
    step0: int = 0,
    seed: int = 0,
) -> Generator[Event, None, tuple[EncoderSegmenter, dict[str, float]]]:
    """Train E against the frozen EMA generator; returns the segmenter (eval) and a summary.

    ``real(n)`` gives real photos (n, 3, size, size) in [-1, 1]; None trains on generated samples
    only (no autoencoding term). Stops at the budget, the step count or a stop request.
    """
    if budget_s is None and steps is None:
        raise ValueError("train_encoder needs a time budget, a step count, or both")
    seg = build_segmenter(method, enc.width).to(device)
    bg = copy.deepcopy(method.ema_bg).to(device).eval().requires_grad_(False)
    fg = seg.fg.to(device)
    critic = copy.deepcopy(method.disc).to(device).eval().requires_grad_(False)
    encoder = seg.encoder.train()
    z_dim = method.z_dim
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(encoder.parameters(), lr=enc.lr, betas=(0.9, 0.999))
    use_real = real is not None and (enc.recon_weight > 0 or enc.perceptual_weight > 0)
    yield PhaseChanged(step=step0, phase=phase, detail="training PerturbGAN's encoder on the frozen generator")

    first_z: list[torch.Tensor] = []  # the first step's code loss, for the summary

    def step(frac: float) -> dict[str, torch.Tensor]:
        cos = 0.5 * (1 + math.cos(math.pi * frac))
        for group in opt.param_groups:
            group["lr"] = enc.lr * (MIN_LR_FRACTION + (1 - MIN_LR_FRACTION) * cos)
        n = enc.batch
        z = torch.randn(n, z_dim, generator=gen).to(device)
        with torch.no_grad():
            b, f, m_logits = bg(z), *fg(z)
            x_gen = composite(b, f, torch.sigmoid(m_logits))
        x = torch.cat([x_gen, real(n).to(device)]) if use_real and real is not None else x_gen
        codes = encoder(x)
        terms: dict[str, torch.Tensor] = {}
        terms["z"] = F.mse_loss(codes[:n], torch.cat([z, z], 1))
        # Generated half: only the mask is decoded (its target is known); photos: the composite.
        terms["mask"] = F.binary_cross_entropy_with_logits(fg(codes[:n, z_dim:])[1], torch.sigmoid(m_logits))
        loss = enc.z_weight * terms["z"] + enc.mask_weight * terms["mask"]
        if use_real:
            c_real = codes[n:]
            f_real, l_real = fg(c_real[:, z_dim:])
            x_real = x[n:]
            x_rec = composite(bg(c_real[:, :z_dim]), f_real, torch.sigmoid(l_real))
            terms["recon"] = (x_rec - x_real).abs().mean()
            terms["perceptual"] = _relative_mse(critic(x_rec)[1], critic(x_real)[1])
            loss = loss + enc.recon_weight * terms["recon"] + enc.perceptual_weight * terms["perceptual"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        # Tensors: run_steps reads them on the host only when it reports (the wait for the GPU
        # then also lands inside the budget's clock, so steps/s is not overstated).
        values = {k: v.detach() for k, v in terms.items()}
        if not first_z:
            first_z.append(values["z"])
        return values

    budget = Budget(budget_s, steps)
    done = yield from run_steps(step, budget, control, phase, step0, own_count=True)
    active = budget.elapsed_s
    seg.eval().requires_grad_(False)
    summary = {"steps": float(done), "seconds": active,
               "z_loss_first": float(first_z[0]) if first_z else float("nan"),
               **recovery(seg, bg, method.z_dim, device, seed + 1)}
    log.info("%s: %d steps in %.1f s; %s", phase, done, active, summary)
    return seg.cpu(), summary


@torch.no_grad()
def recovery(
    seg: EncoderSegmenter, bg: torch.nn.Module, z_dim: int, device: torch.device, seed: int
) -> dict[str, float]:
    """How well E inverts G on held-out generated samples: code MSE (chance: 1 + 1 = 2 per
    coordinate for a random guess from the prior, 1 for predicting 0) and mask IoU at 0.5."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(HELD_OUT, z_dim, generator=gen).to(device)
    f, logits = seg.fg(z)
    x = composite(bg(z), f, torch.sigmoid(logits))
    codes = seg.encoder(x)
    m_true = logits > 0
    m_pred = seg(x) > 0
    inter = (m_true & m_pred).flatten(1).sum(1).float()
    union = (m_true | m_pred).flatten(1).sum(1).float()
    iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
    return {
        "z_mse_fg": float(F.mse_loss(codes[:, z_dim:], z)),
        "z_mse_bg": float(F.mse_loss(codes[:, :z_dim], z)),
        "mask_iou": float(iou.mean()),
    }


__all__ = ["add_encoder_stage", "encoder_stage", "enabled", "train_encoder", "build_segmenter",
           "real_batches", "recovery", "UNET_COPY", "STAGE_KIND"]
