"""The GPU check of issue 18: train, export, segment and score on one GPU, printing JSON.

    bench/gpu_check.sh [--smoke] [--device cuda|cpu] [--minutes M] [--batch B] [--out DIR]

For the demo folder and the Weizmann horses (training photos of ``bench/splits``), at 64 and
128 px: the default pipeline for a fixed time budget (``--minutes`` each, 1.4 by default so the
four runs and their exports fit in 8 minutes), ``segmenter.pt`` exported to ONNX, the held-out
photos segmented through onnxruntime (the CUDA provider when ``--device cuda``; the JSON says the
provider that really ran) and scored (IoU at 0.5 against their masks). Per run: steps/s of every
stage (training steps, or photos for GrabCut), the GPU memory peak, the provider, the IoU.
The GAN stage is forced on (``pipeline.min_gan_minutes = 0``): the check is about GPU speed of
every stage, and a 1.4-minute CPU plan would leave the GAN out. Then, on CUDA, two identical
``--steps`` runs: the first under ``torch.cuda.set_sync_debug_mode("warn")`` counts the host
syncs per source line, and the two ``segmenter.pt`` are compared (are ``--steps`` runs
bit-identical on this GPU?). ``--json PATH`` rewrites the report after every run, so a check cut
short still leaves what it measured; a run that fails is recorded with its error and the check
goes on.
``--smoke`` runs the same path at 64 px only, on 12 training and 6 held-out photos, batch 4,
3 s of budget per run, to check the script on a CPU (under 2 minutes on a quiet machine; each
run's fixed costs, GrabCut, checks, exports, are most of it).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from splits import DevFolder, dev_folders, ensure_photos, link_training_photos, load_split  # noqa: E402

from engine.config import RunConfig  # noqa: E402
from engine.control import RunControl  # noqa: E402
from engine.events import Failed, Finished, Progress  # noqa: E402
from engine.export.masks import ExportOptions, export_masks  # noqa: E402
from engine.export.onnx import export_onnx  # noqa: E402
from engine.imageio import read_mask  # noqa: E402
from engine.metrics import image_scores  # noqa: E402
from engine.segmenter.model import load_segmenter  # noqa: E402
from engine.train.runner import train  # noqa: E402

log = logging.getLogger("bench.gpu_check")
FOLDERS = ("demo", "horses")
SIZES = (64, 128)


def _subset(split: dict[str, list[str]], smoke: bool) -> dict[str, list[str]]:
    return {"train": split["train"][:12], "heldout": split["heldout"][:6]} if smoke else split


def train_once(config: RunConfig, device: torch.device) -> dict[str, Any]:
    """Run the pipeline; per stage its last steps/s, the GPU memory peak, how it ended."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    stages: dict[str, dict[str, Any]] = {}
    result: dict[str, Any] = {"ok": False}
    started = time.perf_counter()
    for event in train(config, RunControl()):
        if isinstance(event, Progress):
            stages[event.phase] = {"per_s": round(event.steps_per_s, 2), "unit": event.unit,
                                   "elapsed_s": round(event.elapsed_s, 1)}
        elif isinstance(event, Failed):
            result["error"] = event.error
        elif isinstance(event, Finished):
            result["ok"] = not event.stopped
    result["wall_s"] = round(time.perf_counter() - started, 1)
    result["stages"] = stages
    if device.type == "cuda":
        result["gpu_peak_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return result


def segment_and_score(run: Path, folder: DevFolder, names: list[str], device: str,
                      work: Path) -> dict[str, Any]:
    """ONNX export, onnxruntime masks of the held-out photos, their mean IoU."""
    onnx_path = run / "segmenter.onnx"
    export_onnx(run / "segmenter.pt", onnx_path)
    photos = work / "heldout"
    photos.mkdir(parents=True, exist_ok=True)
    for name in names:
        if not (photos / name).exists():
            os.symlink((folder.photos / name).resolve(), photos / name)
    summary = export_masks(onnx_path, photos, work / "masks", ExportOptions(device=device))
    ious = []
    for name in names:
        stem = Path(name).stem
        pred = work / "masks" / f"{stem}.png"
        gt = read_mask(folder.masks / f"{stem}.png")
        ignore = folder.ignore / f"{stem}.png" if folder.ignore is not None else None
        ign = read_mask(ignore) if ignore is not None and ignore.is_file() else None
        mask = read_mask(pred) if pred.is_file() else np.zeros_like(gt)
        ious.append(image_scores(mask, gt, ign).iou)
    return {"provider": summary.provider, "provider_warning": summary.warning,
            "segment_img_per_s": round(summary.written / max(summary.seconds, 1e-9), 1),
            "heldout_photos": len(ious), "heldout_iou": round(float(np.mean(ious)), 4)}


def _error(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"[:600]


def _config(photos: Path, run: Path, size: int, batch: int, device: torch.device,
            minutes: float | None = None, steps: int | None = None) -> RunConfig:
    config = RunConfig(folder=str(photos), out=str(run), size=size, batch=batch,
                       minutes=minutes, steps=steps, device=device.type, seed=0)
    return dataclasses.replace(
        config, pipeline=dataclasses.replace(config.pipeline, min_gan_minutes=0.0))


def sync_and_determinism(photos: Path, out: Path, device: torch.device,
                         steps: int, batch: int) -> dict[str, Any]:
    """Two identical ``--steps`` runs: host syncs counted in the first, weights compared."""
    result: dict[str, Any] = {"steps": steps}
    syncs: collections.Counter[str] = collections.Counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if device.type == "cuda":
            torch.cuda.set_sync_debug_mode("warn")
        try:
            result["first"] = train_once(_config(photos, out / "det-a", 64, batch, device,
                                                 steps=steps), device)
        finally:
            if device.type == "cuda":
                torch.cuda.set_sync_debug_mode(0)
    for w in caught:
        if "synchroniz" in str(w.message):
            syncs[f"{Path(w.filename).name}:{w.lineno}"] += 1
    result["host_syncs_total"] = sum(syncs.values())
    result["host_syncs_top"] = dict(syncs.most_common(15))
    result["second"] = train_once(_config(photos, out / "det-b", 64, batch, device,
                                          steps=steps), device)
    a, _ = load_segmenter(out / "det-a" / "segmenter.pt")
    b, _ = load_segmenter(out / "det-b" / "segmenter.pt")
    diffs = [float((x - y).abs().max()) for x, y in zip(a.state_dict().values(),
                                                        b.state_dict().values(), strict=True)
             if x.is_floating_point()]
    result["segmenter_max_abs_diff"] = max(diffs)
    result["bit_identical"] = max(diffs) == 0.0
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny folders and budgets (CPU check)")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--minutes", type=float, help="budget per run (default 1.4; smoke 0.1)")
    ap.add_argument("--batch", type=int, help="GAN batch (default 32; smoke 4)")
    ap.add_argument("--out", type=Path, help="work folder (default: a new temporary one)")
    ap.add_argument("--json", type=Path, help="also write the report here after every run")
    ap.add_argument("--det-steps", type=int,
                    help="steps of each of the two determinism runs (default 40 on CUDA, 3 in "
                         "smoke mode; 0 skips them)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    minutes = args.minutes or (0.05 if args.smoke else 1.4)
    batch = args.batch or (4 if args.smoke else 32)
    args.det_steps = (3 if args.smoke else 40) if args.det_steps is None else args.det_steps
    out = args.out or Path(tempfile.mkdtemp(prefix="peel-gpu-check-"))
    device = torch.device(args.device if args.device == "cpu" or torch.cuda.is_available() else "cpu")
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "requested": args.device, "torch": torch.__version__, "minutes_per_run": minutes,
        "batch": batch, "smoke": args.smoke, "load_before": os.getloadavg()[0], "runs": [],
    }
    started = time.perf_counter()

    def save() -> None:
        report["wall_s"] = round(time.perf_counter() - started, 1)
        if args.json is not None:
            args.json.write_text(json.dumps(report, indent=2))

    for name in FOLDERS:
        folder = dev_folders()[name]
        ensure_photos(folder)
        split = _subset(load_split(name), args.smoke)
        photos = link_training_photos(folder, split, out / name / "photos")
        for size in SIZES[:1] if args.smoke else SIZES:
            run = out / name / f"run-{size}"
            row: dict[str, Any] = {"folder": name, "size": size, "ok": False}
            try:
                row.update(train_once(_config(photos, run, size, batch, device, minutes),
                                      device))
                if row["ok"]:
                    row.update(segment_and_score(run, folder, split["heldout"], device.type,
                                                 out / name / f"seg-{size}"))
            except Exception as exc:  # record it and go on: the other runs still measure
                row["ok"] = False
                row["exception"] = _error(exc)
            report["runs"].append(row)
            log.warning("%s %d px: %s", name, size, row)
            save()
    if args.det_steps > 0 and (device.type == "cuda" or args.smoke):
        try:
            photos = out / "demo" / "photos"
            report["determinism"] = sync_and_determinism(photos, out, device, args.det_steps,
                                                         batch)
        except Exception as exc:
            report["determinism"] = {"exception": _error(exc)}
        save()
    report["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=2))
    return 0 if all(r["ok"] for r in report["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
