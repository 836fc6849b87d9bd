"""ReDO's networks (Chen, Artières & Denoyer 2019), narrowed to run on a CPU.

The mask net follows the paper's table (7x7 conv, two stride-2 convs, residual blocks, pyramid
pooling, two upsampling convs, InstanceNorm) but ends in a 1-channel *logit* map, like
``engine.nets.unet.UNet``, so it is a segmenter in its own right: the same inference, file format
and ONNX export. Pyramid pooling uses fixed pooling windows (plus one global pool) instead of
adaptive bins: adaptive bins other than 1x1 do not export to ONNX with dynamic H and W, and fixed
windows make the net's stride 4 x 8 = 32.

The region generators, the discriminator and the z-encoder δ use spectral norm; the mask net does
not (the paper regularises it with weight decay instead).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

POOL_WINDOWS = (2, 4, 8)  # in feature-map pixels (stride 4), plus one global pool


@dataclass(frozen=True)
class MaskNetConfig:
    width: int = 16
    res_blocks: int = 3

    @property
    def stride(self) -> int:
        return 4 * max(POOL_WINDOWS)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def _conv_in(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, padding_mode="reflect"),
        nn.InstanceNorm2d(cout, affine=True),
        nn.ReLU(inplace=True),
    )


class _ResIN(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(ch, ch, 3, padding=1, padding_mode="reflect"),
            nn.InstanceNorm2d(ch, affine=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(ch, ch, 3, padding=1, padding_mode="reflect"),
            nn.InstanceNorm2d(ch, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class _Pyramid(nn.Module):
    """Context at several scales: each branch pools, squeezes channels, and is upsampled back."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.branch_ch = max(1, ch // 16)
        n = len(POOL_WINDOWS) + 1
        self.squeeze = nn.ModuleList(nn.Conv2d(ch, self.branch_ch, 1) for _ in range(n))
        self.out_ch = ch + n * self.branch_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pooled = [F.avg_pool2d(x, k) for k in POOL_WINDOWS] + [x.mean(dim=(2, 3), keepdim=True)]
        parts = [x]
        for conv, p in zip(self.squeeze, pooled, strict=True):
            parts.append(F.interpolate(F.relu(conv(p)), size=(h, w), mode="bilinear", align_corners=False))
        return torch.cat(parts, dim=1)


class MaskNet(nn.Module):
    """Input (N, 3, H, W) RGB in [-1, 1]; output (N, 1, H, W) logits. H, W multiples of ``stride``.

    ``polarity`` (+1 or −1) is set after training: ReDO's two regions are interchangeable, and the
    segmenter must call "object" the region that does not fill the border (see redo.py).
    """

    segmenter_kind = "redo"

    def __init__(self, config: MaskNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or MaskNetConfig()
        w = self.config.width
        self.encode = nn.Sequential(
            _conv_in(3, w, 7), _conv_in(w, 2 * w, 3, 2), _conv_in(2 * w, 4 * w, 3, 2),
            *[_ResIN(4 * w) for _ in range(self.config.res_blocks)],
        )
        self.pyramid = _Pyramid(4 * w)
        c = self.pyramid.out_ch
        self.up1 = _conv_in(c, c // 2)
        self.up2 = _conv_in(c // 2, c // 4)
        self.head = nn.Conv2d(c // 4, 1, 3, padding=1, padding_mode="reflect")
        self.register_buffer("polarity", torch.ones(()))

    @property
    def stride(self) -> int:
        return self.config.stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pyramid(self.encode(x))
        h = self.up1(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        h = self.up2(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.head(h) * self.polarity


class _FiLMRes(nn.Module):
    """Residual block whose BatchNorm scale and shift come from z (conditional batch norm)."""

    def __init__(self, ch: int, z_dim: int) -> None:
        super().__init__()
        self.conv1 = spectral_norm(nn.Conv2d(ch, ch, 3, padding=1))
        self.conv2 = spectral_norm(nn.Conv2d(ch, ch, 3, padding=1))
        self.bn1 = nn.BatchNorm2d(ch, affine=False)
        self.bn2 = nn.BatchNorm2d(ch, affine=False)
        self.film = spectral_norm(nn.Linear(z_dim, 4 * ch))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        g1, b1, g2, b2 = self.film(z)[:, :, None, None].chunk(4, dim=1)
        h = self.conv1(F.relu(self.bn1(x) * (1 + g1) + b1))
        h = self.conv2(F.relu(self.bn2(h) * (1 + g2) + b2))
        return x + h


class RegionGenerator(nn.Module):
    """Redraws one region: reads the region's mask (where to draw) and z (what to draw) -> RGB."""

    def __init__(self, z_dim: int, width: int = 16, blocks: int = 2) -> None:
        super().__init__()
        w = width
        self.down = nn.Sequential(
            spectral_norm(nn.Conv2d(1, w, 3, padding=1)), nn.ReLU(inplace=True),
            spectral_norm(nn.Conv2d(w, 2 * w, 4, stride=2, padding=1)), nn.ReLU(inplace=True),
            spectral_norm(nn.Conv2d(2 * w, 4 * w, 4, stride=2, padding=1)),
        )
        self.blocks = nn.ModuleList(_FiLMRes(4 * w, z_dim) for _ in range(blocks))
        self.up = nn.Sequential(
            nn.BatchNorm2d(4 * w), nn.ReLU(inplace=True), nn.Upsample(scale_factor=2.0),
            spectral_norm(nn.Conv2d(4 * w, 2 * w, 3, padding=1)),
            nn.BatchNorm2d(2 * w), nn.ReLU(inplace=True), nn.Upsample(scale_factor=2.0),
            spectral_norm(nn.Conv2d(2 * w, w, 3, padding=1)),
            nn.BatchNorm2d(w), nn.ReLU(inplace=True),
            spectral_norm(nn.Conv2d(w, 3, 3, padding=1)), nn.Tanh(),
        )

    def forward(self, mask: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h = self.down(mask * 2 - 1)
        for block in self.blocks:
            h = block(h, z)
        return self.up(h)


class _DownRes(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = spectral_norm(nn.Conv2d(cin, cout, 3, padding=1))
        self.conv2 = spectral_norm(nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = spectral_norm(nn.Conv2d(cin, cout, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.relu(self.conv1(F.relu(x))))
        return F.avg_pool2d(h + self.skip(x), 2)


class Critic(nn.Module):
    """SN down-residual encoder + sum pooling + linear: the discriminator (out 1) and δ (out n·|z|).

    Sizes 32-128 px are reduced to 4x4 before pooling, as in the paper's table.
    """

    def __init__(self, size: int, out_dim: int, width: int = 32) -> None:
        super().__init__()
        levels = max(1, (size // 4).bit_length() - 1)
        widths = [width * min(2**i, 8) for i in range(levels + 1)]
        layers: list[nn.Module] = [_DownRes(3, widths[0])]
        layers += [_DownRes(widths[i], widths[i + 1]) for i in range(levels - 1)]
        self.body = nn.Sequential(*layers)
        self.out = spectral_norm(nn.Linear(widths[levels - 1], out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(self.body(x)).sum(dim=(2, 3)))


def orthogonal_init(module: nn.Module, gain: float) -> None:
    """Orthogonal weights (gain 0.8 in the paper; 0.2 and 1.4 failed there), zero biases.

    Spectral-norm layers keep the raw weight as ``parametrizations.weight.original``; that is what
    gets initialised.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            weight = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
            with torch.no_grad():
                nn.init.orthogonal_(weight, gain=gain)
                if m.bias is not None:
                    m.bias.zero_()
