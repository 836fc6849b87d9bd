"""rembg running Peel's segmenter: the ``--target rembg`` export against ``peel segment`` (JSON).

Issue 17 measured the plain ``segmenter.onnx`` loaded as rembg's ``u2net_custom`` model at IoU
0.21 on 20 horse photos where ``peel segment`` with the same file scored 0.56. This runs, on the
same kind of folder and one segmenter:
  peel         ``peel segment`` (engine.export.masks.export_masks with segmenter.onnx)
  rembg_plain  rembg's u2net_custom session on the plain segmenter.onnx (the issue's setup)
  rembg_target rembg's u2net_custom session on segmenter-rembg.onnx (``--target rembg``)
and prints each one's IoU against the ground truth (scoring only) and against ``peel``.
rembg runs in-process through its own ``new_session`` / ``remove(only_mask=True)``, the code
behind ``rembg p -om``.

Without ``--run`` the segmenter is the tests' label-free one (a width-8 UNet fitted to GrabCut
masks of the photos, ``tests/test_export_rembg.py``); with ``--run`` a trained run's.

Usage: python bench/rembg_agreement.py PHOTOS --gt MASKS [--count 20] [--run RUN_DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", type=Path)
    parser.add_argument("--gt", type=Path, required=True, help="ground-truth masks (scoring only)")
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--run", type=Path, help="run folder with segmenter.pt (default: fit one)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="peel-rembg-"))
    os.environ["U2NET_HOME"] = str(work / "home")  # before rembg reads it
    from PIL import Image
    from rembg import new_session, remove

    from engine.export.masks import ExportOptions, export_masks
    from engine.export.onnx import export_onnx
    from engine.export.rembg import export_rembg
    from engine.imageio import read_rgb

    started = time.perf_counter()
    photos = work / "photos"
    photos.mkdir()
    names = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    for path in names[: args.count]:
        shutil.copy(path, photos / path.name)
    run = work / "run"
    run.mkdir()
    if args.run is not None:
        shutil.copy(args.run / "segmenter.pt", run / "segmenter.pt")
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from test_export_rembg import fit_label_free

        fit_label_free(sorted(photos.iterdir()), run / "segmenter.pt")
    export_onnx(run)
    (work / "home").mkdir()
    export_rembg(run, work / "home" / "target.onnx")
    shutil.copy(run / "segmenter.onnx", work / "home" / "plain.onnx")
    export_masks(run / "segmenter.onnx", photos, work / "peel", ExportOptions(device="cpu"))

    sessions = {name: new_session("u2net_custom", model_path=str(work / "home" / f"{name}.onnx"),
                                  providers=["CPUExecutionProvider"])
                for name in ("plain", "target")}
    scores: dict[str, list[float]] = {k: [] for k in
                                      ("peel", "rembg_plain", "rembg_target", "target_vs_peel",
                                       "plain_vs_peel")}
    for photo in sorted(photos.iterdir()):
        gt = cv2.imread(str(args.gt / f"{photo.stem}.png"), cv2.IMREAD_GRAYSCALE) > 127
        peel = cv2.imread(str(work / "peel" / f"{photo.stem}.png"), cv2.IMREAD_GRAYSCALE) > 127
        image = Image.fromarray(read_rgb(photo))
        masks = {name: np.asarray(remove(image, session=s, only_mask=True)) > 127
                 for name, s in sessions.items()}
        scores["peel"].append(iou(peel, gt))
        scores["rembg_plain"].append(iou(masks["plain"], gt))
        scores["rembg_target"].append(iou(masks["target"], gt))
        scores["target_vs_peel"].append(iou(masks["target"], peel))
        scores["plain_vs_peel"].append(iou(masks["plain"], peel))
    result = {
        "photos": len(scores["peel"]),
        "segmenter": str(args.run) if args.run else "label-free fit (tests/test_export_rembg.py)",
        "iou_vs_gt": {k: round(float(np.mean(scores[k])), 4)
                      for k in ("peel", "rembg_plain", "rembg_target")},
        "iou_vs_peel_segment": {
            "rembg_target_mean": round(float(np.mean(scores["target_vs_peel"])), 4),
            "rembg_target_min": round(float(np.min(scores["target_vs_peel"])), 4),
            "rembg_plain_mean": round(float(np.mean(scores["plain_vs_peel"])), 4),
        },
        "seconds": round(time.perf_counter() - started, 1),
        "load_avg": [round(v, 2) for v in os.getloadavg()],
    }
    print(json.dumps(result, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
