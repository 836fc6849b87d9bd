"""Does a seed method give a usable segmenter in a CPU budget? (issue #18: ReDO, latentdir)

    python bench/seed_methods.py --folder PHOTOS:GT[:IGNORE] [--folder ...] --method redo
        --minutes 10 [--size 64] [--cpu 0] [--out DIR] [--no-bootstrap]

For each folder: ``peel train PHOTOS --method METHOD --minutes M --threads 1`` pinned to one core
(``taskset -c CPU``), the run's ``segmenter.pt`` segments the folder's photos, scored with
``engine.metrics`` against the ground truth (scoring only), beside two fixed shapes on the same
photos: the centred ellipse inscribed in GrabCut's rectangle (inset 10 % a side) and that
rectangle itself. A method that scores like a fixed shape has learned nothing about the photos.
Prints one JSON object; one line per folder on stderr as it goes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality import png_bytes, score_model, score_run  # noqa: E402

from engine.atomic import write_bytes  # noqa: E402
from engine.baselines.grabcut import centred_rect  # noqa: E402
from engine.imageio import read_rgb, scan_images  # noqa: E402
from engine.metrics import evaluate_folders  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MARGIN = 0.1  # GrabCut's rectangle (engine.baselines.grabcut)


def shape_mask(h: int, w: int, shape: str) -> np.ndarray:
    """The centred ``ellipse`` or ``rect`` inscribed in GrabCut's rectangle, 0/255."""
    x, y, rw, rh = centred_rect(h, w, MARGIN)
    mask = np.zeros((h, w), np.uint8)
    if shape == "rect":
        mask[y : y + rh, x : x + rw] = 255
    else:
        cv2.ellipse(mask, (x + rw // 2, y + rh // 2), (rw // 2, rh // 2), 0, 0, 360, 255, -1)
    return mask


def score_shape(photos: list[Path], gt: Path, ignore: Path | None, out: Path, shape: str) -> float:
    pred = out / shape
    pred.mkdir(parents=True, exist_ok=True)
    for p in photos:
        h, w = read_rgb(p).shape[:2]
        write_bytes(pred / f"{p.stem}.png", png_bytes(shape_mask(h, w, shape)))
    return round(float(evaluate_folders(pred, gt, ignore)["iou"]), 4)


def warm_only_segmenter(run: Path) -> Path | None:
    """ReDO's mask net as its warm start left it (before the game), written as a segmenter file
    beside the run's own, so that what the game adds to the warm start is scored; None when the
    run had no warm start (``--no-bootstrap``) or no checkpoint."""
    found = sorted((run / "checkpoints").glob("step-*.pt"))
    if not found or not (run / "segmenter.pt").exists():
        return None
    warm = torch.load(found[-1], map_location="cpu", weights_only=False).get("warm_mask_net")
    if warm is None:
        return None
    seg = torch.load(run / "segmenter.pt", map_location="cpu", weights_only=True)
    seg["state_dict"] = {k: v.clone() for k, v in warm.items()}
    out = run / "segmenter-warm-only.pt"
    torch.save(seg, out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folder", action="append", required=True, metavar="PHOTOS:GT[:IGNORE]")
    ap.add_argument("--method", default="redo")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--cpu", type=int, default=0)
    ap.add_argument("--no-bootstrap", action="store_true",
                    help="passed to peel train (redo: the paper's cold start)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/peel-seed-methods"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    load_start = os.getloadavg()
    rows = []
    for spec in args.folder:
        parts = [Path(p) for p in spec.split(":")]
        photos_dir, gt = parts[0], parts[1]
        ignore = parts[2] if len(parts) > 2 else None
        work = args.out / f"{photos_dir.parent.name}-{photos_dir.name}"
        run = work / f"{args.method}{'-cold' if args.no_bootstrap else ''}-{args.minutes:g}min"
        shutil.rmtree(run, ignore_errors=True)
        cmd = ["taskset", "-c", str(args.cpu), sys.executable, "-m", "engine.cli", "train",
               str(photos_dir), "--out", str(run), "--method", args.method, "--minutes",
               f"{args.minutes:g}", "--size", str(args.size), "--threads", "1"]
        if args.no_bootstrap:
            cmd.append("--no-bootstrap")
        t0 = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        photos = scan_images(photos_dir)
        row = {"folder": str(photos_dir), "method": args.method, "minutes": args.minutes,
               "no_bootstrap": args.no_bootstrap, "exit": done.returncode, "wall_s": round(wall, 1),
               "ellipse_iou": score_shape(photos, gt, ignore, work, "ellipse"),
               "rect_iou": score_shape(photos, gt, ignore, work, "rect")}
        if (run / "segmenter.pt").exists():
            row["iou"] = score_run(run, photos, gt, ignore)
            # latentdir's own generator run: the segmenter and the prior its fit started from
            for key, model in (("generator_segmenter_iou", run / "generator" / "segmenter.pt"),
                               ("generator_prior_iou", run / "generator" / "bootstrap" / "prior.pt")):
                if model.exists():
                    row[key] = score_model(model, photos, gt, ignore, run / f"pred-{key}")
            warm = warm_only_segmenter(run) if args.method == "redo" else None
            if warm is not None:  # what ReDO's game added to its warm start (may be negative)
                row["warm_only_iou"] = score_model(warm, photos, gt, ignore, run / "pred-warm-only")
            summary = run / "summary.json"
            if summary.exists():
                row["summary"] = json.loads(summary.read_text())
        else:
            tail = (done.stdout + done.stderr).strip().splitlines()
            row["error"] = tail[-1] if tail else "no segmenter.pt"
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    print(json.dumps({"cpu": args.cpu, "load_start": load_start, "load_end": os.getloadavg(),
                      "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
