"""Does test-time augmentation lift a segmenter's IoU? Plain against flipped / rescaled inputs.

    python bench/tta_probe.py SEGMENTER.pt --split horses|flowers|demo

Scores one segmenter on both parts of a dev split (``bench/splits.py``) four ways: plain; the mean
of the photo's and its mirror's soft masks; the short side at 1.25x the training size; and the mean
of both flips at both sizes. Prints JSON: the mean IoU of each, the plain scores' per-photo
standard deviation, and the standard error of each variant's per-photo difference from plain (a
paired comparison, so that a gain can be told from the photos' spread).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from splits import dev_folders, ensure_photos, load_split  # noqa: E402
from stage_scores import Scorer  # noqa: E402

from engine.metrics import image_scores  # noqa: E402
from engine.nets.unet import UNet  # noqa: E402
from engine.segmenter.infer import finish, prepare  # noqa: E402
from engine.segmenter.model import load_segmenter  # noqa: E402


def soft_mask(model: UNet, rgb: np.ndarray, size: int, flip: bool) -> np.ndarray:
    """The photo's soft mask with its short side at ``size``; with ``flip``, averaged with the
    mirrored photo's (mirrored back)."""
    x, resized = prepare(rgb, size, model.stride)
    t = torch.from_numpy(x)[None]
    with torch.no_grad():
        prob = torch.sigmoid(model(t))[0, 0]
        if flip:
            prob = 0.5 * (prob + torch.sigmoid(model(t.flip(-1)))[0, 0].flip(-1))
    return finish(prob.numpy(), resized, rgb.shape[:2])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("segmenter", type=Path)
    ap.add_argument("--split", required=True, choices=sorted(dev_folders()))
    args = ap.parse_args(argv)
    model, info = load_segmenter(args.segmenter, "cpu")
    folder = dev_folders()[args.split]
    ensure_photos(folder)
    scorer = Scorer(folder, load_split(args.split))
    larger = int(info.size * 1.25)
    variants = {"plain": [(info.size, False)], "flip": [(info.size, True)],
                "scale1.25": [(larger, False)], "flip+1.0+1.25": [(info.size, True), (larger, True)]}
    out: dict[str, float] = {}
    for part, rows in scorer.sets.items():
        per: dict[str, np.ndarray] = {}
        for name, specs in variants.items():
            ious = []
            for rgb, gt, ignore in rows:
                soft = np.mean([soft_mask(model, rgb, s, f) for s, f in specs], axis=0)
                ious.append(image_scores((soft * 255 + 0.5).astype(np.uint8), gt, ignore).iou)
            per[name] = np.array(ious)
            out[f"{part}/{name}"] = round(float(per[name].mean()), 4)
        out[f"{part}/plain_sd"] = round(float(per["plain"].std(ddof=1)), 4)
        for name in variants:
            if name != "plain":
                diff = per[name] - per["plain"]
                out[f"{part}/{name}-plain_se"] = round(float(diff.std(ddof=1) / np.sqrt(len(diff))), 4)
    print(json.dumps({"segmenter": str(args.segmenter), "split": args.split, **out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
