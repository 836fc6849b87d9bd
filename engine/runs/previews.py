"""Preview grids: one column per fixed latent code (or photo), rows background / foreground / mask /
composite. Every method writes its previews through ``write_grid``."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from engine.atomic import write_bytes

GAP = 2


def grid(arrays: dict[str, np.ndarray]) -> np.ndarray:
    rows = [
        arrays["background"],
        arrays["foreground"],
        np.repeat(arrays["mask"][..., None], 3, axis=-1),
        arrays["composite"],
    ]
    n, h, w, _ = rows[0].shape
    out = np.full((4 * h + 3 * GAP, n * w + (n - 1) * GAP, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c in range(n):
            out[r * (h + GAP) : r * (h + GAP) + h, c * (w + GAP) : c * (w + GAP) + w] = row[c]
    return out


def write_grid(path: Path, arrays: dict[str, np.ndarray]) -> None:
    ok, png = cv2.imencode(".png", cv2.cvtColor(grid(arrays), cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"could not encode preview {path}")
    write_bytes(path, png.tobytes())
