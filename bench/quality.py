"""Segmentation quality of Peel on a labelled folder: train without labels, then score the masks.

    python bench/quality.py FOLDER --gt MASKS [--ignore DIR] --minutes M [--method perturbgan]
        [--size 64] [--extra-unlabelled DIR] [--out DIR] [--bootstrap-only] [--no-refine]

The ground truth is used only for scoring. Trains on FOLDER's photos (plus --extra-unlabelled ones)
with the full pipeline (engine.train.runner.train) or, with --bootstrap-only, just the GrabCut →
UNet prior; segments FOLDER's photos at their own size; scores with engine.metrics. Also scores on
the same photos: GrabCut from a centred rectangle (the classic baseline), the bootstrap prior alone,
and each learned segmenter after one GrabCut pass initialised from its mask (refined). Prints one
JSON object; writes predictions and an overlay sheet (4 best + 4 worst photos by IoU of the main
segmenter: red = predicted object, green line = ground-truth outline) under --out.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.atomic import write_bytes  # noqa: E402
from engine.baselines.grabcut import grabcut_folder  # noqa: E402
from engine.config import RunConfig  # noqa: E402
from engine.control import RunControl  # noqa: E402
from engine.data import load_folder  # noqa: E402
from engine.device import describe, pick_device  # noqa: E402
from engine.events import Failed, PhaseChanged, Progress, WarningEvent  # noqa: E402
from engine.imageio import ImageReadError, read_mask, read_rgb, scan_images  # noqa: E402
from engine.metrics import evaluate_folders  # noqa: E402
from engine.segmenter.infer import predict_soft  # noqa: E402
from engine.segmenter.model import load_segmenter  # noqa: E402
from engine.segmenter.refine import grabcut_refine  # noqa: E402

log = logging.getLogger("bench.quality")
SUMMARY_KEYS = ("count", "missing_count", "accuracy", "iou", "miou", "max_fbeta")


def png_bytes(mask: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", mask)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def segment_folder(
    model_path: Path, photos: list[Path], out_dir: Path, device: torch.device
) -> float:
    """Soft masks (0..255 PNG) of every photo with the segmenter; returns seconds taken."""
    t0 = time.perf_counter()
    model, info = load_segmenter(model_path, device)
    for start in range(0, len(photos), 16):
        chunk, rgbs = [], []
        for p in photos[start : start + 16]:
            try:
                rgbs.append(read_rgb(p))
                chunk.append(p)
            except ImageReadError as exc:
                log.warning("skipping %s: %s", exc.path, exc.reason)
        for p, soft in zip(chunk, predict_soft(model, rgbs, info.size, device), strict=True):
            write_bytes(out_dir / f"{p.stem}.png", png_bytes((soft * 255 + 0.5).astype(np.uint8)))
    return time.perf_counter() - t0


def score_model(model: Path, photos: list[Path], gt: Path, ignore: Path | None,
                pred: Path) -> float:
    """IoU of a segmenter file on ``photos`` (its soft masks written to ``pred``)."""
    pred.mkdir(parents=True, exist_ok=True)
    segment_folder(model, photos, pred, torch.device("cpu"))
    return round(float(evaluate_folders(pred, gt, ignore)["iou"]), 4)


def score_run(run: Path, photos: list[Path], gt: Path, ignore: Path | None) -> float:
    """IoU of a finished run's ``segmenter.pt`` on ``photos`` (soft masks in RUN/pred)."""
    return score_model(run / "segmenter.pt", photos, gt, ignore, run / "pred")


def _refine_one(task: tuple[str, str, str]) -> str | None:
    photo, soft_png, dst = task
    cv2.setNumThreads(1)
    try:
        refined = grabcut_refine(read_rgb(photo), read_mask(soft_png))
        write_bytes(dst, png_bytes(refined))
    except Exception as exc:  # scored as a missing prediction; say why
        return f"{photo}: {type(exc).__name__}: {exc}"
    return None


def refine_folder(photos: list[Path], soft_dir: Path, out_dir: Path) -> float:
    t0 = time.perf_counter()
    tasks = [
        (str(p), str(soft_dir / f"{p.stem}.png"), str(out_dir / f"{p.stem}.png"))
        for p in photos
        if (soft_dir / f"{p.stem}.png").exists()
    ]
    # spawn, not fork: a child forked after torch/OpenMP started its threads can hang forever in
    # its first OpenCV call (seen here: every refine worker stuck in cv2.setNumThreads).
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1, mp_context=spawn) as pool:
        for err in pool.map(_refine_one, tasks, chunksize=4):
            if err:
                log.warning("refine failed: %s", err)
    return time.perf_counter() - t0


def summary(result: dict) -> dict:
    return {k: result[k] for k in SUMMARY_KEYS if k in result}


def overlay_sheet(
    photos: dict[str, Path], pred_dir: Path, gt_dir: Path, per_image: list[dict], dst: Path
) -> None:
    """4 best and 4 worst photos by IoU: red tint = predicted object, green = GT outline."""
    ranked = sorted(per_image, key=lambda r: r["iou"])
    chosen = ranked[-4:][::-1] + ranked[:4]
    tiles = []
    for row in chosen:
        name = row["name"]
        rgb = read_rgb(photos[name])
        gt = read_mask(gt_dir / f"{name}.png") if (gt_dir / f"{name}.png").exists() else None
        pred = read_mask(pred_dir / f"{name}.png")
        h = 160
        w = max(1, round(rgb.shape[1] * h / rgb.shape[0]))
        rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        pred = cv2.resize(pred, (w, h), interpolation=cv2.INTER_LINEAR) >= 128
        tile = rgb.astype(np.float32)
        tile[pred] = 0.55 * tile[pred] + 0.45 * np.array([255, 0, 0], np.float32)
        tile = tile.astype(np.uint8)
        if gt is not None:
            g = (cv2.resize(gt, (w, h), interpolation=cv2.INTER_NEAREST) >= 128).astype(np.uint8)
            contours, _ = cv2.findContours(g, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(tile, contours, -1, (0, 255, 0), 1)
        cv2.putText(
            tile,
            f"{row['iou']:.2f}",
            (4, 14),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
        tiles.append(tile)
    width = max(t.shape[1] for t in tiles)
    tiles = [cv2.copyMakeBorder(t, 0, 0, 0, width - t.shape[1], cv2.BORDER_CONSTANT) for t in tiles]
    rows = [np.hstack(tiles[i : i + 4]) for i in range(0, len(tiles), 4)]
    rows = [
        cv2.copyMakeBorder(r, 0, 4, 0, rows[0].shape[1] - r.shape[1], cv2.BORDER_CONSTANT)
        for r in rows
    ]
    sheet = np.vstack(rows)
    write_bytes(dst, png_bytes(cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)))


def train_bootstrap(
    paths: list[Path], run_dir: Path, args: argparse.Namespace, device: torch.device
) -> dict:
    from engine.segmenter.bootstrap import bootstrap_prior

    cache = load_folder(args.folder, args.size, paths=paths)
    gen = bootstrap_prior(
        cache, run_dir, args.size, device, args.minutes * 60, RunControl(), 0, steps=args.steps
    )
    return _drain(gen)


def train_pipeline(paths: list[Path], run_dir: Path, args: argparse.Namespace) -> dict:
    from engine.train.runner import train

    if args.extra_unlabelled:
        raise SystemExit(
            "--extra-unlabelled needs --bootstrap-only until RunConfig takes a file list"
        )
    config = RunConfig(
        folder=str(args.folder),
        out=str(run_dir),
        method=args.method,
        size=args.size,
        minutes=args.minutes,
        device=args.device,
        seed=args.seed,
        threads=args.threads,  # without it the runner takes every core, whatever --threads says
    )
    for item in args.set:
        config = with_override(config, item)
    return _drain(train(config, RunControl()))


def with_override(obj, item: str):  # noqa: ANN001, ANN201
    """``a.b.c=v`` -> a copy of the frozen dataclass ``obj`` with that nested field replaced."""
    from dataclasses import replace

    key, value = item.split("=", 1)
    head, _, rest = key.partition(".")
    current = getattr(obj, head)
    if rest:
        return replace(obj, **{head: with_override(current, f"{rest}={value}")})
    kind = type(current)
    parsed = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    return replace(obj, **{head: parsed})


def _drain(events) -> dict:  # noqa: ANN001
    """Consume a run's events, logging now and then; returns the last Progress of each phase."""
    last = 0.0
    final: dict = {}
    try:
        while True:
            ev = next(events)
            if isinstance(ev, Progress):
                final[ev.phase] = {
                    "step": ev.step,
                    "it_per_s": round(ev.steps_per_s, 3),
                    "elapsed_s": round(ev.elapsed_s, 1),
                }
            if isinstance(ev, PhaseChanged):
                log.info("phase %s: %s", ev.phase, ev.detail)
            elif isinstance(ev, WarningEvent):
                log.warning("%s", ev.message)
            elif isinstance(ev, Failed):
                raise SystemExit(f"training failed: {ev.error}")
            elif isinstance(ev, Progress) and time.time() - last > 30:
                last = time.time()
                log.info(
                    "%s step %d: %.2f it/s, %.0f s, eta %s",
                    ev.phase,
                    ev.step,
                    ev.steps_per_s,
                    ev.elapsed_s,
                    None if ev.eta_s is None else round(ev.eta_s),
                )
    except StopIteration:
        pass
    return final


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("folder", type=Path)
    ap.add_argument("--gt", type=Path, required=True)
    ap.add_argument("--ignore", type=Path)
    ap.add_argument("--minutes", type=float, required=True)
    ap.add_argument("--method", default=RunConfig.method)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--extra-unlabelled", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--bootstrap-only", action="store_true")
    ap.add_argument(
        "--steps",
        type=int,
        help="with --bootstrap-only: also stop the prior's training at this many steps (with a "
        "generous --minutes, the figure then does not depend on how busy the CPU is)",
    )
    ap.add_argument("--no-refine", action="store_true", help="skip the GrabCut-refined figures")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD.PATH=VALUE",
                    help="override a RunConfig field, e.g. pipeline.split.gan=0.35 (repeatable)")
    ap.add_argument(
        "--score-only", action="store_true",
        help="do not train: score the run already in OUT/run (e.g. after a scoring step failed)",
    )
    ap.add_argument(
        "--grabcut-masks",
        type=Path,
        help="score these GrabCut masks (from `peel baseline grabcut FOLDER DIR`) instead of "
        "computing them again",
    )
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default: torch's choice). On a CPU shared with other jobs, 1 "
        "thread trained ~3x faster than 2 here: OpenMP threads wait on each other when descheduled",
    )
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr
    )

    if args.grabcut_masks is not None and not args.grabcut_masks.is_dir():
        ap.error(
            f"--grabcut-masks: not a folder: {args.grabcut_masks}"
        )  # before minutes of training
    torch.manual_seed(args.seed)
    out = args.out or Path("/tmp") / f"peel-quality-{args.folder.resolve().name}"
    run_dir = out / "run"
    device, warning = pick_device(args.device)
    photos = scan_images(args.folder)
    train_paths = photos + (scan_images(args.extra_unlabelled) if args.extra_unlabelled else [])
    by_stem = {p.stem: p for p in photos}
    report: dict = {
        "folder": str(args.folder),
        "photos": len(photos),
        "training_photos": len(train_paths),
        "minutes": args.minutes,
        "size": args.size,
        "device": describe(device),
        "torch_threads": torch.get_num_threads(),
        "mode": "bootstrap-only" if args.bootstrap_only else f"pipeline ({args.method})",
        "steps_cap": args.steps,
        "set": args.set,
        "device_warning": warning,
        "timings_s": {},
    }
    t0 = time.perf_counter()
    if args.score_only:
        report["mode"] += ", scored from an existing run"
    elif args.bootstrap_only:
        report["phases"] = train_bootstrap(train_paths, run_dir, args, device)
    else:
        report["phases"] = train_pipeline(train_paths, run_dir, args)
    report["timings_s"]["train"] = round(time.perf_counter() - t0, 1)

    scored: dict[str, dict] = {}
    models = {"bootstrap": run_dir / "bootstrap" / "prior.pt"}
    if not args.bootstrap_only:
        models["segmenter"] = run_dir / "segmenter.pt"
    for name, path in models.items():
        if not path.exists():
            report[name] = {"error": f"{path} was not written"}
            continue
        pred_dir = out / f"pred-{name}"
        report["timings_s"][f"segment_{name}"] = round(
            segment_folder(path, photos, pred_dir, device), 1
        )
        scored[name] = evaluate_folders(pred_dir, args.gt, args.ignore)
        report[name] = summary(scored[name])
        if not args.no_refine:
            ref_dir = out / f"pred-{name}-refined"
            report["timings_s"][f"refine_{name}"] = round(
                refine_folder(photos, pred_dir, ref_dir), 1
            )
            report[f"{name}_refined"] = summary(evaluate_folders(ref_dir, args.gt, args.ignore))

    t1 = time.perf_counter()
    gc_dir = args.grabcut_masks or out / "pred-grabcut"
    if args.grabcut_masks is None:
        grabcut_folder(args.folder, gc_dir)
        report["timings_s"]["grabcut"] = round(time.perf_counter() - t1, 1)
    report["grabcut_masks"] = str(gc_dir)
    report["grabcut"] = summary(evaluate_folders(gc_dir, args.gt, args.ignore))

    main_name = "segmenter" if "segmenter" in scored else "bootstrap"
    if main_name in scored and scored[main_name]["per_image"]:
        sheet = out / f"overlay-{main_name}.png"
        overlay_sheet(
            by_stem, out / f"pred-{main_name}", args.gt, scored[main_name]["per_image"], sheet
        )
        report["overlay"] = str(sheet)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
