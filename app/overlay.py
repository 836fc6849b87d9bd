"""Mask-on-photo overlays for the results viewer (plain numpy + torch, no Qt)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engine.device import pick_device
from engine.imageio import read_rgb
from engine.segmenter.infer import predict_soft
from engine.segmenter.model import load_segmenter

DISPLAY_SIDE = 960  # photos are shown at most this large; inference runs on the full photo
TINT = np.array([255, 60, 90], np.float32)


@dataclass(frozen=True)
class Prediction:
    path: str
    rgb: np.ndarray  # display-sized photo
    mask: np.ndarray  # float32 [0, 1], same size
    coverage: float


class Predictor:
    """Loads ``segmenter.pt`` once and predicts one photo at a time; used from one worker at a time."""

    def __init__(self, segmenter_path: str | Path, device: str = "auto") -> None:
        self.segmenter_path = str(segmenter_path)
        self._device = pick_device(device)[0]
        self._lock = threading.Lock()
        self._model = None
        self.size = 0

    def predict(self, path: str) -> Prediction:
        with self._lock:
            if self._model is None:
                self._model, info = load_segmenter(self.segmenter_path, self._device)
                self.size = info.size
            rgb = read_rgb(path)
            mask = predict_soft(self._model, [rgb], self.size, self._device)[0]
        h, w = rgb.shape[:2]
        scale = DISPLAY_SIDE / max(h, w)
        if scale < 1:
            dsize = (max(1, round(w * scale)), max(1, round(h * scale)))
            rgb = cv2.resize(rgb, dsize, interpolation=cv2.INTER_AREA)
            mask = cv2.resize(mask, dsize, interpolation=cv2.INTER_LINEAR)
        return Prediction(path, rgb, mask.astype(np.float32), float((mask >= 0.5).mean()))


def overlay(rgb: np.ndarray, mask: np.ndarray, opacity: float) -> np.ndarray:
    """Tint the predicted object and outline it; opacity 0 shows the plain photo."""
    a = (np.clip(mask, 0, 1) * opacity)[..., None]
    out = rgb.astype(np.float32) * (1 - a) + TINT * a
    edge = cv2.morphologyEx((mask >= 0.5).astype(np.uint8), cv2.MORPH_GRADIENT,
                            np.ones((3, 3), np.uint8)) > 0
    out[edge] = (1 - min(1.0, 2 * opacity)) * out[edge] + min(1.0, 2 * opacity) * np.array(
        [255, 255, 255], np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
