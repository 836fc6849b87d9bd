"""Layer generators: a code goes to a 4x4 map, then up-blocks double it to the image size.

PerturbGAN's ablation found two generators (background; foreground + mask) on one code better than
one generator with three outputs, because a shared trunk correlates B and F too much.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from engine.nets.blocks import level_widths, up_block


class LayerGenerator(nn.Module):
    """Code (N, in_dim) -> (N, out_channels, size, size), raw (the caller applies tanh/sigmoid)."""

    def __init__(
        self, in_dim: int, out_channels: int, size: int, width: int, upsample: str = "resize"
    ) -> None:
        super().__init__()
        levels = int(math.log2(size // 4))
        if 4 * 2**levels != size:
            raise ValueError(f"size must be 4 * 2^k, not {size}")
        widths = level_widths(width, levels)[::-1]  # 4x4 first
        self.start_channels = widths[0]
        self.fc = nn.Linear(in_dim, widths[0] * 16, bias=False)
        self.fc_norm = nn.BatchNorm2d(widths[0])
        self.ups = nn.Sequential(*(up_block(widths[i], widths[i + 1], upsample) for i in range(levels)))
        self.out = nn.Conv2d(widths[-1], out_channels, 3, padding=1)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        h = self.fc(code).view(code.shape[0], self.start_channels, 4, 4)
        h = torch.relu(self.fc_norm(h))
        return self.out(self.ups(h))


class BackgroundGenerator(nn.Module):
    def __init__(self, z_dim: int, size: int, width: int, upsample: str = "resize") -> None:
        super().__init__()
        self.net = LayerGenerator(z_dim, 3, size, width, upsample)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(z))


class ForegroundGenerator(nn.Module):
    """Returns the foreground image in [-1, 1] and the mask logits (sigmoid gives m)."""

    def __init__(self, in_dim: int, size: int, width: int, upsample: str = "resize") -> None:
        super().__init__()
        self.net = LayerGenerator(in_dim, 4, size, width, upsample)

    def forward(self, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(code)
        return torch.tanh(out[:, :3]), out[:, 3:4]
