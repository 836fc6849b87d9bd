"""Segmenting users' photos with the torch model: any size and aspect, batched, CPU or CUDA.

The net was trained at ``size`` px on square crops, so each photo is resized to put its short side
at ``size`` (what the net knows about object scale), padded to a multiple of the net's stride, and
the soft mask is resized back to the photo's own size.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from engine.nets.unet import UNet


def working_size(h: int, w: int, size: int, stride: int) -> tuple[int, int, int, int]:
    """Resized (h, w) with the short side at ``size``, and the padded (h, w) for the net."""
    scale = size / min(h, w)
    rh, rw = max(1, round(h * scale)), max(1, round(w * scale))
    ph, pw = -(-rh // stride) * stride, -(-rw // stride) * stride
    return rh, rw, ph, pw


def prepare(rgb: np.ndarray, size: int, stride: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Resize + reflect-pad one photo; returns float32 (3, ph, pw) in [-1, 1] and the resized size."""
    h, w = rgb.shape[:2]
    rh, rw, ph, pw = working_size(h, w, size, stride)
    interp = cv2.INTER_AREA if rh < h else cv2.INTER_LINEAR
    small = cv2.resize(rgb, (rw, rh), interpolation=interp)
    padded = cv2.copyMakeBorder(small, 0, ph - rh, 0, pw - rw, cv2.BORDER_REFLECT_101)
    x = padded.astype(np.float32).transpose(2, 0, 1) / 127.5 - 1.0
    return x, (rh, rw)


def finish(prob: np.ndarray, resized: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """Crop the padding off a (ph, pw) probability map and resize to the photo's size."""
    rh, rw = resized
    crop = np.ascontiguousarray(prob[:rh, :rw])
    return cv2.resize(crop, (out_hw[1], out_hw[0]), interpolation=cv2.INTER_LINEAR)


@torch.no_grad()
def predict_soft(
    model: UNet,
    images: Sequence[np.ndarray],
    size: int,
    device: torch.device | str = "cpu",
    batch: int = 8,
) -> list[np.ndarray]:
    """Soft masks (float32 in [0, 1], each the size of its photo) for uint8 RGB photos.

    Photos with the same padded shape share a forward pass; others go one shape at a time.
    """
    model.eval()
    prepared = [prepare(img, size, model.stride) for img in images]
    out: list[np.ndarray | None] = [None] * len(images)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, (x, _) in enumerate(prepared):
        by_shape.setdefault(x.shape, []).append(i)
    for idxs in by_shape.values():
        for start in range(0, len(idxs), batch):
            chunk = idxs[start : start + batch]
            x = torch.from_numpy(np.stack([prepared[i][0] for i in chunk])).to(device)
            prob = torch.sigmoid(model(x))[:, 0].float().cpu().numpy()
            for j, i in enumerate(chunk):
                out[i] = finish(prob[j], prepared[i][1], images[i].shape[:2])
    return [o for o in out if o is not None]
