"""Choices inside the bootstrap prior, measured at a fixed step count (not time) so that a busy,
shared CPU changes the speed figures but not the quality ones.

    python bench/segmenter_ablation.py FOLDER --gt MASKS [--ignore DIR] --steps N
        [--variants w16-dice,w16-bce,w24-dice] [--masks DIR] [--size 64]

GrabCut masks of FOLDER are computed once into --masks (the bootstrap's cache format) and shared
by every variant. Each variant trains a UNet on them from the same seed for N steps and is scored
on FOLDER's photos at their own size (IoU at 0.5 against MASKS, used only for scoring). Prints JSON
with per-variant IoU, mIoU, training it/s and seconds.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.control import RunControl  # noqa: E402
from engine.data import load_folder  # noqa: E402
from engine.imageio import read_mask, read_rgb  # noqa: E402
from engine.metrics import image_scores  # noqa: E402
from engine.nets.unet import UNet, UNetConfig  # noqa: E402
from engine.segmenter import bootstrap  # noqa: E402
from engine.segmenter.fit import fit_unet  # noqa: E402
from engine.segmenter.infer import predict_soft  # noqa: E402
from engine.segmenter.pairs import filter_pairs  # noqa: E402

log = logging.getLogger("bench.ablation")


def drain(gen):  # noqa: ANN001, ANN201
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value


def parse_variant(name: str) -> dict:
    """'w16-dice' -> width 16, dice weight 0.5; 'w24-bce' -> width 24, BCE only."""
    width, loss = name.split("-")
    return {"width": int(width[1:]), "dice_weight": 0.5 if loss == "dice" else 0.0}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--gt", type=Path, required=True)
    ap.add_argument("--ignore", type=Path)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--variants", default="w16-dice,w16-bce,w24-dice")
    ap.add_argument("--masks", type=Path, default=Path("/tmp/peel-ablation-masks"))
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    cache = load_folder(args.folder, args.size)
    t0 = time.perf_counter()
    masks = drain(bootstrap.grabcut_masks(cache, args.masks, 1e9, RunControl(), 0))
    grabcut_s = time.perf_counter() - t0
    images, mask_arr = bootstrap._training_arrays(cache, masks)
    keep = filter_pairs(torch.empty(0), torch.from_numpy(mask_arr).float().div(255).unsqueeze(1))
    images, mask_arr = images[keep.numpy()], mask_arr[keep.numpy()]

    photos = [read_rgb(p) for p in cache.paths]
    gts = [read_mask(args.gt / f"{p.stem}.png") for p in cache.paths]
    ignores = [
        read_mask(args.ignore / f"{p.stem}.png")
        if args.ignore and (args.ignore / f"{p.stem}.png").exists()
        else None
        for p in cache.paths
    ]
    report: dict = {
        "folder": str(args.folder),
        "photos": len(cache),
        "masks_kept": int(keep.sum()),
        "grabcut_s": round(grabcut_s, 1),
        "steps": args.steps,
        "size": args.size,
        "torch_threads": torch.get_num_threads(),
        "variants": {},
    }
    for name in args.variants.split(","):
        v = parse_variant(name)
        torch.manual_seed(0)
        net = UNet(UNetConfig(width=v["width"]))
        sample = bootstrap.make_sampler(images, mask_arr, args.size, seed=0)
        t1 = time.perf_counter()
        net = drain(
            fit_unet(
                sample,
                net,
                torch.device("cpu"),
                None,
                args.steps,
                bootstrap.BATCH,
                RunControl(),
                "ablation",
                0,
                dice_weight=v["dice_weight"],
            )
        )
        train_s = time.perf_counter() - t1
        soft = predict_soft(net, photos, args.size)
        scores = [
            image_scores((s * 255 + 0.5).astype(np.uint8), g, ig)
            for s, g, ig in zip(soft, gts, ignores, strict=True)
        ]
        report["variants"][name] = {
            "iou": float(np.mean([s.iou for s in scores])),
            "miou": float(np.mean([s.miou for s in scores])),
            "train_s": round(train_s, 1),
            "it_per_s": round(args.steps / train_s, 3),
        }
        log.info("%s: %s", name, report["variants"][name])
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
