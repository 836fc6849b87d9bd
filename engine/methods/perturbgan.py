"""PerturbGAN (Bielski & Favaro 2019): layered WGAN-GP with random integer shifts of F and m.

If the background drew the object, shifting the foreground layer would leave a misaligned
composite the critic can spot; that is what pushes the object into the foreground layer. The mask
size hinge keeps the mask from emptying; background contrast jitter stops the background from
matching the foreground's colours exactly.
"""

from __future__ import annotations

import torch

from engine.augment import contrast, sample_contrast, sample_shift, shift
from engine.compose import composite
from engine.losses import binarization, max_size_hinge, min_size_hinge
from engine.methods.base import LayeredGan


class PerturbGan(LayeredGan):
    name = "perturbgan"
    has_size_floor = True

    def optimiser_settings(self) -> tuple[float, float, tuple[float, float]]:
        k = self.config.perturbgan
        return k.lr_g, k.lr_d, (k.beta1, k.beta2)

    def make_fake(self, n: int) -> dict[str, torch.Tensor]:
        k = self.config.perturbgan
        b, f, m = self.layers(self.sample_codes(n))
        jitter = self.draw(n, lambda rows: sample_contrast(
            rows, k.contrast_low, k.contrast_high, b.device, b.dtype))
        b_j = contrast(b, jitter)
        side = min(f.shape[-2:])
        moved = self.draw(n, lambda rows: sample_shift(rows, side, k.max_shift, f.device))
        fm = shift(torch.cat([f, m.to(f.dtype)], 1), moved)
        return {"b": b, "m": m, "m_p": fm[:, 3:4], "fake": composite(b_j, fm[:, :3], fm[:, 3:4])}

    def d_loss(self, real: torch.Tensor, fake: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        k = self.config.perturbgan
        terms, _ = self.critic_terms(real, fake["fake"].detach(), k.drift, k.gp_weight)
        return terms

    def g_loss(self, fake: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        k = self.config.perturbgan
        b, m = fake["b"], fake["m"]
        scores, _ = self.disc(self.diff_augment(fake["fake"]))
        adv = -scores.mean()
        eta = self.size_floor if self.size_floor is not None else k.eta
        size = min_size_hinge(m, eta) + max_size_hinge(m, k.max_coverage)
        binar = binarization(m)
        total = adv + k.size_weight * size + k.binarize_weight * binar
        terms = {"g_adv": adv, "size": size, "binarize": binar}
        return self.with_shared_g_terms(total, terms, b, m, (fake["fake"], fake["m_p"]))
