"""Method registry: ``RunConfig.method`` names one of these."""

from __future__ import annotations

import torch

from engine.config import RunConfig
from engine.methods.base import LayeredGan, Sample
from engine.methods.ilgan import IlGan
from engine.methods.perturbgan import PerturbGan

METHODS: dict[str, type[LayeredGan]] = {"ilgan": IlGan, "perturbgan": PerturbGan}

__all__ = ["METHODS", "LayeredGan", "Sample", "build_method"]


def build_method(config: RunConfig, device: torch.device) -> LayeredGan:
    return METHODS[config.method](config, device)
