"""PerturbGAN's encoder: invert the frozen layered generator, so a real photo gets a mask.

Bielski & Favaro (2019, section 3.3) segment real images by training an encoder E that maps a
photo to the generator's codes; the foreground generator's mask for E(x) is the segmentation. The
paper's encoder gives separate codes to the background and the foreground generator (and to each
StyleGAN scale); Peel's generators read one code each, so E gives two: ``[z_bg | z_fg]``.

``EncoderSegmenter`` packages E with the frozen foreground generator as one segmenter: any
(N, 3, H, W) in, mask logits (N, 1, H, W) out. The generator only knows ``size`` x ``size``
squares, so the photo is resized to that inside the net and the mask resized back; the net has
no stride constraint (``stride`` 1), so inference and ONNX export need no padding.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engine.nets.blocks import level_widths
from engine.nets.generator import ForegroundGenerator


class CodeEncoder(nn.Module):
    """(N, 3, size, size) in [-1, 1] -> (N, n_codes * z_dim) codes.

    A plain conv ladder (3x3 conv, then 4x4 stride-2 conv, LeakyReLU) down to 4x4 and one linear
    layer. No normalisation layers: batches mix generated and real photos, and batch statistics
    would let one kind shift the other's codes.
    """

    def __init__(self, size: int, width: int, z_dim: int, n_codes: int = 2) -> None:
        super().__init__()
        levels = int(math.log2(size // 4))
        if 4 * 2**levels != size:
            raise ValueError(f"size must be 4 * 2^k, not {size}")
        widths = level_widths(width, levels)
        layers: list[nn.Module] = [nn.Conv2d(3, widths[0], 3, padding=1), nn.LeakyReLU(0.2)]
        for i in range(levels):
            layers += [
                nn.Conv2d(widths[i], widths[i + 1], 4, stride=2, padding=1),
                nn.LeakyReLU(0.2),
                nn.Conv2d(widths[i + 1], widths[i + 1], 3, padding=1),
                nn.LeakyReLU(0.2),
            ]
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(widths[levels] * 16, n_codes * z_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x).flatten(1))


@dataclass(frozen=True)
class EncoderSegmenterConfig:
    """Everything needed to rebuild the net from ``segmenter.pt`` (no run folder needed)."""

    size: int = 64  # the generator's resolution: photos are resized to this inside the net
    width: int = 32  # encoder width
    z_dim: int = 64
    g_width: int = 16  # foreground generator width, as trained
    upsample: str = "resize"

    @property
    def stride(self) -> int:
        return 1

    def to_dict(self) -> dict[str, int | str]:
        return asdict(self)


class EncoderSegmenter(nn.Module):
    """Photo -> E -> foreground code -> frozen foreground generator's mask logits, at input size."""

    segmenter_kind = "encoder"

    def __init__(self, config: EncoderSegmenterConfig | None = None) -> None:
        super().__init__()
        self.config = config or EncoderSegmenterConfig()
        c = self.config
        self.encoder = CodeEncoder(c.size, c.width, c.z_dim, n_codes=2)
        self.fg = ForegroundGenerator(c.z_dim, c.size, c.g_width, c.upsample)

    @property
    def stride(self) -> int:
        return self.config.stride

    def codes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z_bg, z_fg) for images already at ``size`` x ``size``."""
        out = self.encoder(x)
        return out[:, : self.config.z_dim], out[:, self.config.z_dim :]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        s = self.config.size
        # Plain bilinear (no antialias): exported to ONNX as one Resize op that every runtime has.
        small = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False)
        _, z_fg = self.codes(small)
        _, logits = self.fg(z_fg)
        return F.interpolate(logits.float(), size=(h, w), mode="bilinear", align_corners=False)
