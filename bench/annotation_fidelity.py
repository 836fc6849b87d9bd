"""How faithfully the annotation polygons give back their masks, per simplification tolerance (JSON).

For every mask of a demo folder (``peel demo-data``: exact object masks, no model involved), the
objects are traced as ``peel segment --format coco|labelme|yolo`` traces them
(``engine.export.polygons``) at each tolerance, drawn back the way each consumer rasterises
polygons (pycocotools for COCO, PIL's ImageDraw as labelme does, OpenCV fillPoly on truncated
coordinates as Ultralytics does) and scored by IoU against the mask with its specks removed.
Also the mean number of vertices per polygon.

Usage: python bench/annotation_fidelity.py [--count 100] [--sizes 64 128] [--tolerances 0.25 0.5 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.demo import make_demo_folder  # noqa: E402
from engine.export.polygons import components, outline  # noqa: E402


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def draw(polys: list[np.ndarray], h: int, w: int) -> dict[str, np.ndarray]:
    from PIL import Image, ImageDraw
    from pycocotools import mask as mask_utils

    coco = np.zeros((h, w), bool)
    if polys:
        rles = mask_utils.frPyObjects([p.ravel().tolist() for p in polys], h, w)
        coco = mask_utils.decode(mask_utils.merge(rles)).astype(bool)
    canvas = Image.new("L", (w, h), 0)
    for p in polys:
        ImageDraw.Draw(canvas).polygon([tuple(v) for v in p], fill=1, outline=1)
    yolo = np.zeros((h, w), np.uint8)
    for p in polys:
        cv2.fillPoly(yolo, [p.astype(np.int32)], 1)
    return {"pycocotools": coco, "pil_labelme": np.asarray(canvas, bool),
            "opencv_yolo": yolo.astype(bool)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--tolerances", type=float, nargs="+", default=[0.25, 0.5, 1.0, 2.0])
    args = parser.parse_args()
    result: dict[str, object] = {"count": args.count, "load_avg": [round(v, 2) for v in os.getloadavg()]}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            folder = Path(tmp) / f"demo{size}"
            make_demo_folder(folder, count=args.count, size=size, seed=11)
            masks = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) > 127
                     for p in sorted((folder / "masks").glob("*.png"))]
            for tol in args.tolerances:
                scores: dict[str, list[float]] = {}
                vertices = []
                for mask in masks:
                    found = components(mask)
                    kept = np.zeros_like(mask)
                    for c in found:
                        kept[c.y:c.y + c.mask.shape[0], c.x:c.x + c.mask.shape[1]] |= c.mask
                    polys = [outline(c, tol) for c in found]
                    vertices += [len(p) for p in polys]
                    for name, drawn in draw(polys, *mask.shape).items():
                        scores.setdefault(name, []).append(iou(drawn, kept))
                result[f"{size}px_tol{tol:g}"] = {
                    **{f"{k}_iou_mean": round(float(np.mean(v)), 4) for k, v in scores.items()},
                    **{f"{k}_iou_min": round(float(np.min(v)), 4) for k, v in scores.items()},
                    "vertices_mean": round(float(np.mean(vertices)), 1),
                }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
