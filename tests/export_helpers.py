"""Shared by the export tests: one tiny segmenter exported to ONNX once per test session.

A dynamo export takes 10-30 s on the shared 2-core machine, so both export test modules reuse the
same file (cached under pytest's session temp folder) instead of exporting once each.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

TINY_SIZE = 64


def make_tiny_segmenter(path: Path) -> None:
    """An untrained but seeded width-8 UNet whose output varies across the image."""
    import torch

    from engine.nets.unet import UNet, UNetConfig
    from engine.segmenter.model import save_segmenter

    torch.manual_seed(0)
    net = UNet(UNetConfig(width=8, depth=3))
    # Calibrate BatchNorm statistics on structured images, as training would: with default stats
    # an untrained UNet gives a near-constant 0.55, which would make parity tests meaningless.
    for mod in net.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.momentum = None  # cumulative average over the calibration batches
    rng = np.random.default_rng(0)
    net.train()
    with torch.no_grad():
        for _ in range(4):
            batch = [shapes_photo(TINY_SIZE, TINY_SIZE, rng) for _ in range(8)]
            x = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
            net(x)
        net.head.weight.mul_(3.0)  # spread probabilities so masks have object and background
    net.eval()
    save_segmenter(path, net, TINY_SIZE, "ilgan", "/home/someone/photos/horses")


def exported_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder holding segmenter.pt and segmenter.onnx (made with ``peel export-onnx``)."""
    from engine.cli.main import main

    run_dir = tmp_path_factory.getbasetemp() / "export-run"
    if not (run_dir / "segmenter.onnx").is_file():
        run_dir.mkdir(exist_ok=True)
        make_tiny_segmenter(run_dir / "segmenter.pt")
        assert main(["export-onnx", str(run_dir)]) == 0
    return run_dir


def shapes_photo(h: int, w: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """An RGB photo with structure (gradient, disc, box): noise alone gives flat UNet outputs.

    Without ``rng`` the layout is fixed; with it colours and positions vary.
    """
    rng = rng or np.random.default_rng(0)
    c = rng.integers(0, 256, (3, 3))
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 // w, yy * 255 // h, np.full_like(xx, c[0, 0])], -1).astype(np.uint8)
    cx, cy = int(w * rng.uniform(0.2, 0.5)), int(h * rng.uniform(0.3, 0.7))
    cv2.circle(img, (cx, cy), max(1, min(h, w) // 4), c[1].tolist(), -1)
    cv2.rectangle(img, (w // 2, h // 5), (w * 4 // 5, h * 3 // 5), c[2].tolist(), -1)
    return img
