"""Building blocks shared by the generators, the discriminator and the heads."""

from __future__ import annotations

from torch import nn


def level_widths(width: int, levels: int) -> list[int]:
    """Channels per resolution level, full resolution first: width, 2w, 4w, 8w, 8w, ..."""
    return [width * min(2**i, 8) for i in range(levels + 1)]


def up_block(cin: int, cout: int, mode: str) -> nn.Sequential:
    """Double the resolution.

    ``resize`` (nearest upsample + 3x3 conv) is the default: 4x4 stride-2 transposed convs leave
    checkerboard patterns that show up as dotted masks. ``transposed`` is kept only so the speed
    benchmark can compare against the calibration reference at equal width.
    """
    if mode == "resize":
        conv: list[nn.Module] = [
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        ]
    elif mode == "transposed":
        conv = [nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False)]
    else:
        raise ValueError(f"unknown upsample mode {mode!r}")
    return nn.Sequential(*conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def down_block(cin: int, cout: int) -> nn.Sequential:
    """Halve the resolution: 4x4 stride-2 conv + LeakyReLU (DCGAN discriminator style)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 4, stride=2, padding=1),
        nn.LeakyReLU(0.2, inplace=True),
    )
