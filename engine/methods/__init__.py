"""Segmentation methods, one module each; ``engine.methods.registry`` lists them.

Kept free of torch at import time (``LayeredGan`` and ``Sample`` load on first use) so that the
CLI's argument parser can read the registry without loading the nets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from engine.config import RunConfig
    from engine.methods.base import LayeredGan, Sample

__all__ = ["LayeredGan", "Sample", "build_method"]


def build_method(config: RunConfig, device: torch.device) -> LayeredGan:
    """The layered GAN ``config.method`` names (a ValueError for methods that are not one)."""
    from engine.methods.registry import get

    return get(config.method).gan_class()(config, device)  # type: ignore[no-any-return]


def __getattr__(name: str) -> Any:
    if name in ("LayeredGan", "Sample"):
        from engine.methods import base

        return getattr(base, name)
    raise AttributeError(f"module 'engine.methods' has no attribute {name!r}")
