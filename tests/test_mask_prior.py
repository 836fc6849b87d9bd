"""The mask-side segmenter prior: mask mass where S sees background is penalised, nothing else."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.config import NetConfig, RunConfig
from engine.losses import mask_outside_prior
from engine.methods import build_method
from engine.methods.registry import layered_gan_names


def test_mask_outside_prior_counts_only_mask_on_background() -> None:
    logits = torch.full((1, 1, 8, 8), -6.0)
    logits[..., 2:6, 2:6] = 6.0  # S: object in the centre
    inside = torch.zeros(1, 1, 8, 8)
    inside[..., 2:6, 2:6] = 1.0
    everywhere = torch.ones(1, 1, 8, 8)
    assert float(mask_outside_prior(inside, logits)) < 0.01
    assert float(mask_outside_prior(everywhere, logits)) > 0.7
    # S is a fixed target: no gradient reaches the segmenter's logits
    logits.requires_grad_(True)
    mask = everywhere.clone().requires_grad_(True)
    mask_outside_prior(mask, logits).backward()
    assert logits.grad is None and mask.grad is not None and float(mask.grad.sum()) > 0


class NothingIsObject(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x[:, :1], -8.0)


@pytest.mark.parametrize("method", layered_gan_names())
def test_the_g_step_reports_and_applies_the_mask_prior(method: str) -> None:
    torch.manual_seed(0)
    cfg = RunConfig(folder="x", out="y", method=method, size=32, batch=4, steps=1,
                    net=NetConfig(g_width=4, d_width=4, z_dim=8))
    gan = build_method(cfg, torch.device("cpu"))
    gan.set_segmenter(NothingIsObject(), weight=1.0, mask_weight=1.0)
    terms = gan.step(torch.rand(4, 3, 32, 32) * 2 - 1)
    assert "mask_prior" in terms
    # S sees no object anywhere, so the term is the mean of the perturbed mask
    assert 0.0 < float(terms["mask_prior"]) < 1.0
    gan.set_segmenter(NothingIsObject(), weight=1.0)  # off by default
    assert "mask_prior" not in gan.step(torch.rand(4, 3, 32, 32) * 2 - 1)
