"""The segmenter: a small fully convolutional UNet that maps an RGB image to mask logits.

Fully convolutional so that it runs on any size that is a multiple of ``stride`` (inference pads
to that), which is what lets the exported ONNX model take dynamic height and width.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class UNetConfig:
    width: int = 16  # 24 trained ~3x slower on CPU for no measured gain (bench/RESULTS.md)
    depth: int = 4
    in_channels: int = 3

    @property
    def stride(self) -> int:
        return 2**self.depth

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """Input: (N, 3, H, W) RGB in [-1, 1]; output: (N, 1, H, W) logits. H, W multiples of stride."""

    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or UNetConfig()
        c = self.config
        widths = [c.width * min(2**i, 8) for i in range(c.depth + 1)]
        self.stem = _block(c.in_channels, widths[0])
        self.down = nn.ModuleList(_block(widths[i], widths[i + 1]) for i in range(c.depth))
        # Resize-then-conv upsampling: transposed convs leave checkerboard masks.
        self.up = nn.ModuleList(
            _block(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(c.depth))
        )
        self.head = nn.Conv2d(widths[0], 1, 1)

    @property
    def stride(self) -> int:
        return self.config.stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(F.max_pool2d(skips[-1], 2)))
        h = skips.pop()
        for block in self.up:
            skip = skips.pop()
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = block(torch.cat([h, skip], dim=1))
        return self.head(h)
