"""GrabCut baseline quality and speed on a folder with ground truth; prints one JSON object.

Quality: ``peel baseline grabcut`` + ``peel evaluate`` in one go (same functions).
Speed: ``--compare-executors N`` also times N photos with worker processes vs threads, to check
the choice of processes in ``grabcut_folder`` (OpenCV releases the GIL, so threads could win).

    .venv/bin/python bench/grabcut_baseline.py IMAGES MASKS [--ignore DIR] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.baselines.grabcut import grabcut_folder, grabcut_mask  # noqa: E402
from engine.imageio import read_rgb, scan_images  # noqa: E402
from engine.metrics import evaluate_folders  # noqa: E402


def _segment(path: Path) -> int:
    return int(grabcut_mask(read_rgb(path)).sum() > 0)


def time_executors(images: list[Path], workers: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for label, cls in (("process", ProcessPoolExecutor), ("thread", ThreadPoolExecutor)):
        t0 = time.perf_counter()
        with cls(max_workers=workers) as pool:
            list(pool.map(_segment, images))
        out[f"{label}_s_per_image"] = (time.perf_counter() - t0) / len(images)
    t0 = time.perf_counter()
    for p in images:
        _segment(p)
    out["serial_s_per_image"] = (time.perf_counter() - t0) / len(images)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", type=Path)
    ap.add_argument("masks", type=Path)
    ap.add_argument("--ignore", type=Path)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--compare-executors", type=int, default=0, metavar="N")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run = grabcut_folder(args.images, tmp, workers=args.workers)
        seconds = time.perf_counter() - t0
        scores = evaluate_folders(tmp, args.masks, args.ignore)
    result = {
        "images": str(args.images),
        "count": scores["count"],
        "written": run.written,
        "unreadable": len(run.bad),
        "missing": scores["missing_count"],
        "accuracy": round(scores["accuracy"], 4),
        "iou": round(scores["iou"], 4),
        "miou": round(scores["miou"], 4),
        "max_fbeta": round(scores["max_fbeta"], 4),
        "workers": args.workers,
        "seconds": round(seconds, 1),
        "cpu_count": os.cpu_count(),
    }
    if args.compare_executors:
        subset = scan_images(args.images)[: args.compare_executors]
        result["executors"] = {
            k: round(v, 4) for k, v in time_executors(subset, args.workers).items()
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
