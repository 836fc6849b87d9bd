"""A layered GAN's sample as the arrays of a ``Preview`` event (``engine.runs.previews`` draws them)."""

from __future__ import annotations

import numpy as np

from engine.data import to_uint8
from engine.methods import Sample


def sample_arrays(sample: Sample) -> dict[str, np.ndarray]:
    """uint8 arrays for the Preview event: (N, H, W, 3) images and an (N, H, W) mask."""
    return {
        "background": to_uint8(sample.background),
        "foreground": to_uint8(sample.foreground),
        "mask": to_uint8(sample.mask * 2 - 1),
        "composite": to_uint8(sample.composite),
    }
