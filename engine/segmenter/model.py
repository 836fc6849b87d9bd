"""Saving and loading ``segmenter.pt``: the one artefact every later step (viewer, ONNX, export) needs.

The file holds only tensors, numbers and strings so it loads with ``weights_only=True`` and can be
rebuilt without the code that trained it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from engine import __version__
from engine.atomic import write_with
from engine.nets.encoder import EncoderSegmenter, EncoderSegmenterConfig
from engine.nets.redo_nets import MaskNet, MaskNetConfig
from engine.nets.unet import UNet, UNetConfig

SCHEMA = 1
NORMALISATION = "rgb/127.5-1"
# kind -> (net class, arch config class). Every kind maps RGB in [-1, 1] to 1-channel logits at
# any H, W multiple of ``net.stride``; "redo" is ReDO's mask net, used as is.
KINDS: dict[str, tuple[type[torch.nn.Module], type]] = {
    "unet": (UNet, UNetConfig),
    "redo": (MaskNet, MaskNetConfig),
    # PerturbGAN's encoder + frozen foreground generator; resizes inside, so stride 1 (any H, W).
    "encoder": (EncoderSegmenter, EncoderSegmenterConfig),
}


class SegmenterLoadError(Exception):
    """The file is missing, corrupt or not a Peel segmenter; the message says which."""


@dataclass(frozen=True)
class SegmenterInfo:
    size: int
    method: str
    source: str
    version: str


def save_segmenter(
    path: str | os.PathLike[str], model: UNet | MaskNet, size: int, method: str, source: str
) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload: dict[str, Any] = {
        "schema": SCHEMA,
        "kind": getattr(model, "segmenter_kind", "unet"),
        "arch": model.config.to_dict(),
        "state_dict": state,
        "size": int(size),
        "method": method,
        "source": source,
        "normalisation": NORMALISATION,
        "version": __version__,
    }
    write_with(path, lambda fh: torch.save(payload, fh))


def load_segmenter(
    path: str | os.PathLike[str], device: torch.device | str = "cpu"
) -> tuple[UNet, SegmenterInfo]:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise SegmenterLoadError(f"{path}: no such file") from exc
    except Exception as exc:
        from engine.safeload import code_refusal

        refused = code_refusal(path, exc)  # a pickle with code in it: say so, never "retry unsafely"
        # Not torch's own text: it advises weights_only=False, never to be done with such a file.
        raise SegmenterLoadError(refused or f"{path}: not a Peel segmenter file (unreadable as "
                                            f"one: {type(exc).__name__})") from exc
    if not isinstance(payload, dict) or payload.get("kind") not in KINDS:
        raise SegmenterLoadError(f"{path}: not a Peel segmenter")
    if payload.get("schema") != SCHEMA:
        raise SegmenterLoadError(f"{path}: unsupported schema {payload.get('schema')!r}")
    net_cls, arch_cls = KINDS[payload["kind"]]
    model = net_cls(arch_cls(**payload["arch"]))
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise SegmenterLoadError(f"{path}: weights do not match the architecture ({exc})") from exc
    model.to(device).eval()
    info = SegmenterInfo(
        size=int(payload["size"]),
        method=str(payload["method"]),
        source=str(payload["source"]),
        version=str(payload.get("version", "?")),
    )
    return model, info
