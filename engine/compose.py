"""The layered composition every method shares: x = (1 - m) B + m F."""

from __future__ import annotations

import torch


def composite(background: torch.Tensor, foreground: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (1 - mask) * background + mask * foreground
