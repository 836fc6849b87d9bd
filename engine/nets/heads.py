"""Mutual-information heads of the improved layered GAN.

Both regress the continuous private code c (unit Gaussian prior). With a fixed-variance Gaussian
posterior the InfoGAN lower bound on I(.; c) is, up to constants, minus the squared error, so the
MI loss is an MSE: dense gradients from the first step, unlike a many-way categorical code.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from engine.nets.blocks import down_block, level_widths


class FeatureCodeHead(nn.Module):
    """E_x: predicts c from the discriminator's features (shares its backbone)."""

    def __init__(self, feature_dim: int, c_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(feature_dim, 128),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(128, c_dim),
        )

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.net(feats)


class MaskCodeHead(nn.Module):
    """E_m: predicts c from the mask alone, so c must be visible in the mask's shape.

    An empty (or full) mask carries no code, which is what makes this term resist the
    all-background collapse.
    """

    def __init__(self, size: int, width: int, c_dim: int) -> None:
        super().__init__()
        levels = int(math.log2(size // 4))
        widths = level_widths(width, levels)
        layers: list[nn.Module] = [down_block(1, widths[0])]
        layers += [down_block(widths[i], widths[i + 1]) for i in range(levels - 1)]
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(widths[levels - 1] * 16, c_dim)

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(mask * 2 - 1).flatten(1))
