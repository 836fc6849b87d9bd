"""DCGAN-style discriminator that also exposes its features (the ilgan E_x head reads them)."""

from __future__ import annotations

import math

import torch
from torch import nn

from engine.nets.blocks import down_block, level_widths


class Discriminator(nn.Module):
    """(N, 3, S, S) -> (score (N,), features (N, feature_dim)).

    Plain convs: both layered methods train it as a WGAN-GP critic, whose gradient penalty
    already constrains it (spectral norm would double-count; with it ilgan ended a centred box).
    """

    def __init__(self, size: int, width: int) -> None:
        super().__init__()
        levels = int(math.log2(size // 4))
        widths = level_widths(width, levels)
        layers: list[nn.Module] = [down_block(3, widths[0])]
        layers += [down_block(widths[i], widths[i + 1]) for i in range(levels - 1)]
        self.body = nn.Sequential(*layers)
        self.feature_dim = widths[levels - 1] * 16
        self.score = nn.Linear(self.feature_dim, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.body(x).flatten(1)
        return self.score(feats).squeeze(1), feats
