"""Size distribution of a run's generated masks, against the ground truth's on the training crops.

    python bench/mask_sizes.py RUN_DIR [RUN_DIR ...] [--gt MASKS] [--codes 512]

A mean coverage can look right while the shape of the distribution is wrong (PerturbGAN's size
hinge walls off every object below its floor). Prints JSON: per run, the mask sizes of ``--codes``
fixed latent codes from the last step checkpoint (live and EMA generators): mean, 10% quantile,
median, share below 0.2; with ``--gt``, the same for the ground-truth masks on the centre crop the
trainer's 1.125x resize leaves (the size of what the generator imitates).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.config import RunConfig  # noqa: E402
from engine.data import cache_side, square_resize  # noqa: E402
from engine.methods import build_method  # noqa: E402
from engine.runs import checkpoint as ckpt  # noqa: E402


def describe(sizes: np.ndarray) -> dict[str, float]:
    return {"mean": round(float(sizes.mean()), 4), "q10": round(float(np.quantile(sizes, 0.1)), 4),
            "median": round(float(np.median(sizes)), 4),
            "below_0.2": round(float((sizes < 0.2).mean()), 3), "count": int(sizes.size)}


@torch.no_grad()
def generated_sizes(run: Path, codes: int) -> dict:
    cfg = RunConfig.from_dict(json.loads((run / "config.json").read_text()))
    steps = sorted(p for p in ckpt.list_checkpoints(run) if p.name.startswith("step"))
    if not steps:
        raise SystemExit(f"{run}: no step checkpoint")
    method = build_method(cfg, torch.device("cpu"))
    method.load_state_dict(ckpt.load(steps[-1])["method"])
    z = method.sample_codes(codes, torch.Generator().manual_seed(5))
    out: dict = {"run": str(run), "checkpoint": steps[-1].name, "size": cfg.size}
    for name, ema in (("live", False), ("ema", True)):
        out[name] = describe(method.sample(z, ema=ema).mask.flatten(1).mean(1).numpy())
    return out


def training_masks(mask_dir: Path, size: int) -> list[np.ndarray]:
    """Ground-truth masks (0..1) resized as the trainer resizes photos: 1.125 x ``size``."""
    side = cache_side(size)
    out = []
    for path in sorted(mask_dir.glob("*.png")):
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if mask is not None:
            out.append(square_resize(np.repeat(mask[..., None], 3, 2), side)[..., 0] / 255.0)
    return out


def truth_sizes(mask_dir: Path, size: int) -> dict[str, float]:
    off = (cache_side(size) - size) // 2
    masks = training_masks(mask_dir, size)
    return describe(np.asarray([m[off : off + size, off : off + size].mean() for m in masks]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--gt", type=Path, help="ground-truth masks (PNG) of the training photos")
    ap.add_argument("--codes", type=int, default=512)
    args = ap.parse_args()
    runs = [generated_sizes(r, args.codes) for r in args.runs]
    report: dict = {"runs": runs}
    if args.gt is not None:
        report["truth_centre_crops"] = truth_sizes(args.gt, runs[0]["size"])
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
