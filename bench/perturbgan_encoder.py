"""PerturbGAN encoder ablation on a finished perturbgan run: which loss terms make good masks?

Loads the run's last checkpoint (the final generator), trains encoders with different loss
weights for the same number of steps, and scores each one's masks of the photos against ground
truth (same metrics as ``peel evaluate``). Also scores the run's own segmenter files. Prints JSON.

    .venv/bin/python bench/perturbgan_encoder.py RUN_DIR PHOTOS GT_DIR --steps 300
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

from engine.config import RunConfig
from engine.control import RunControl
from engine.data import load_folder
from engine.imageio import read_mask, read_rgb, scan_images
from engine.methods import build_method
from engine.methods.perturbgan_encoder import real_batches, train_encoder
from engine.metrics import image_scores
from engine.runs import checkpoint as ckpt
from engine.segmenter.infer import predict_soft
from engine.segmenter.model import load_segmenter

VARIANTS = {
    "paper (recon + perceptual)": {"z_weight": 0.0, "mask_weight": 0.0},
    "samples only (z + mask)": {"recon_weight": 0.0, "perceptual_weight": 0.0},
    "all (default)": {},
}


def score(net: torch.nn.Module, size: int, photos: list[np.ndarray], gts: list[np.ndarray]) -> dict:
    with torch.no_grad():
        masks = predict_soft(net, photos, size)
    s = [image_scores((m * 255 + 0.5).astype(np.uint8), g) for m, g in zip(masks, gts, strict=True)]
    return {"iou": float(np.mean([x.iou for x in s])), "miou": float(np.mean([x.miou for x in s])),
            "accuracy": float(np.mean([x.accuracy for x in s])),
            "coverage": float(np.mean([(m >= 0.5).mean() for m in masks]))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("photos", type=Path)
    ap.add_argument("gt", type=Path)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = RunConfig.from_dict(json.loads((args.run / "config.json").read_text()))
    method = build_method(cfg, torch.device("cpu"))
    method.load_state_dict(ckpt.load(ckpt.list_checkpoints(args.run)[-1])["method"])
    paths = [p for p in scan_images(args.photos)]
    photos = [read_rgb(p) for p in paths]
    gts = [read_mask(args.gt / f"{p.stem}.png") for p in paths]
    out: dict = {"run": str(args.run), "images": len(photos), "steps": args.steps, "results": {}}
    for name in ("segmenter.pt", "segmenter-unet.pt", "bootstrap/prior.pt"):
        if (args.run / name).exists():
            net, info = load_segmenter(args.run / name)
            out["results"][name] = score(net, info.size, photos, gts)
    cache = load_folder(args.photos, cfg.size)
    for name, weights in VARIANTS.items():
        enc = replace(cfg.perturbgan.encoder, **weights)
        rng = np.random.default_rng(0)
        t0 = time.perf_counter()
        gen = train_encoder(method, real_batches(cache, cfg.size, rng), enc, torch.device("cpu"),
                            None, args.steps, RunControl(), seed=5)
        try:
            while True:
                next(gen)
        except StopIteration as stop:
            seg, summary = stop.value
        out["results"][name] = {**score(seg, cfg.size, photos, gts), **summary,
                                "train_s": time.perf_counter() - t0}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    cv2.setNumThreads(1)
    main()
