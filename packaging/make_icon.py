"""Render resources/peel.png from the same geometry as resources/peel.svg (no SVG renderer needed).

Run: .venv/bin/python packaging/make_icon.py
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SIDE = 256
SS = 4  # supersampling for smooth edges


def _poly(img: np.ndarray, pts: list[tuple[int, int]], rgb: tuple[int, int, int], alpha: float = 1.0) -> None:
    layer = img.copy()
    cv2.fillPoly(layer, [np.array(pts, np.int32) * SS], (*rgb[::-1], 255))
    img[:] = (alpha * layer + (1 - alpha) * img).astype(np.uint8)


def main() -> None:
    s = SIDE * SS
    img = np.zeros((s, s, 4), np.uint8)
    r = 40 * SS
    bg = (0x36, 0x2A, 0x1F, 255)  # BGRA of #1f2a36
    cv2.rectangle(img, (r, 0), (s - r, s), bg, -1)
    cv2.rectangle(img, (0, r), (s, s - r), bg, -1)
    for cx, cy in ((r, r), (s - r, r), (r, s - r), (s - r, s - r)):
        cv2.circle(img, (cx, cy), r, bg, -1, lineType=cv2.LINE_AA)
    _poly(img, [(40, 40), (156, 40), (216, 100), (216, 216), (40, 216)], (0x3F, 0xB6, 0xA8))
    cv2.ellipse(img, (116 * SS, 150 * SS), (52 * SS, 40 * SS), 0, 0, 360, (0x4E, 0xC1, 0xF2, 255), -1)
    _poly(img, [(156, 40), (216, 100), (170, 112)], (0, 0, 0), alpha=0.3)
    _poly(img, [(156, 40), (216, 100), (164, 94)], (0xE8, 0xF4, 0xF2))
    small = cv2.resize(img, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".png", small)
    assert ok
    (ROOT / "resources" / "peel.png").write_bytes(buf.tobytes())


if __name__ == "__main__":
    main()
