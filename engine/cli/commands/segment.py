"""``peel segment --model M IN_DIR OUT_DIR``: masks for a whole folder with onnxruntime."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path

from engine.cli.errors import CliError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "segment",
        help="write a mask for every photo of a folder (ONNX model)",
        description="Write OUT_DIR/NAME.png for every photo IN_DIR/NAME.* at the photo's own "
        "size and orientation (EXIF applied). Existing outputs are skipped, so an interrupted run "
        "resumes where it stopped. Unreadable photos are reported, logged in "
        "OUT_DIR/peel-segment.log and skipped. Exit code 0 when all photos succeeded, 1 when "
        "some failed or the model broke its contract, 2 for bad arguments or an unusable model "
        "or OUT_DIR, 130 when interrupted (the first Ctrl-C stops within a second).",
    )
    p.add_argument("in_dir", type=Path, metavar="IN_DIR", help="folder of photos (never modified)")
    p.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="folder for the PNGs (created)")
    p.add_argument("--model", type=Path, required=True, metavar="FILE", help="ONNX file from peel export-onnx")
    p.add_argument(
        "--format",
        choices=("mask", "soft", "cutout", "coco", "coco-rle", "labelme", "yolo"),
        default="mask",
        help="mask: 0/255 grey PNG; soft: 8-bit probability PNG; cutout: RGBA photo with the "
        "mask as alpha; coco: one COCO file OUT_DIR/coco.json with a polygon per object "
        "(coco-rle: RLE masks, OUT_DIR/coco-rle.json); labelme: OUT_DIR/NAME.json per photo "
        "(LabelMe / X-AnyLabeling); yolo: OUT_DIR/NAME.txt per photo (YOLO-seg) (default mask)",
    )
    p.add_argument("--threshold", type=float, default=0.5, help="probability threshold for mask/cutout (default 0.5)")
    p.add_argument(
        "--refine", action="store_true",
        help="snap each mask to the photo's edges with one GrabCut pass started from it "
        "(slower; output becomes binary)",
    )
    p.add_argument("--recursive", action="store_true", help="include sub-folders (mirrored in OUT_DIR)")
    p.add_argument("--overwrite", action="store_true", help="redo photos whose output already exists")
    p.add_argument("--workers", type=int, help="decode and encode threads each (default: CPU cores)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the model runs (default auto)")
    p.add_argument(
        "--shard",
        metavar="I/N",
        help="process only part I of N (1 <= I <= N), chosen by a hash of each photo's name: "
        "N processes or machines with 1/N ... N/N cover the folder exactly once",
    )
    p.add_argument("--batch", type=int, default=8, help="photos per model call (default 8)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.cli.interrupt import first_interrupt_sets
    from engine.cli.progress import ProgressLine
    from engine.export.jobs import parse_shard
    from engine.export.masks import ExportOptions, ExportProgress, ExportSetupError, export_masks
    from engine.export.sessions import ModelLoadError
    from engine.text import one_line

    try:
        options = ExportOptions(
            format=args.format,
            threshold=args.threshold,
            refine=args.refine,
            recursive=args.recursive,
            overwrite=args.overwrite,
            workers=args.workers,
            device=args.device,
            shard=parse_shard(args.shard) if args.shard else None,
            batch=args.batch,
        )
        options.validate()
    except ExportSetupError as exc:
        raise CliError(str(exc)) from exc

    line = ProgressLine("segment")
    cancel = threading.Event()

    def progress(p: ExportProgress) -> None:
        line(p.processed, p.todo, p.rate, p.failed)

    try:
        with first_interrupt_sets(cancel):
            summary = export_masks(args.model, args.in_dir, args.out_dir, options, progress, cancel)
    except (ExportSetupError, ModelLoadError) as exc:
        raise CliError(str(exc)) from exc
    finally:
        line.close()
    if summary.warning:
        print(f"warning: {summary.warning}", file=sys.stderr)
    # Each failure once, here (the engine logs them at debug level only).
    for bad in summary.failures[:20]:
        print(one_line(f"failed: {bad.path}: {bad.reason}"), file=sys.stderr)
    if len(summary.failures) > 20:
        print(f"... and {len(summary.failures) - 20} more in {summary.log_path}", file=sys.stderr)
    if summary.stopped:  # a full disk: the photos left are done by running the same command again
        print(one_line(f"error: stopped early: {summary.stopped}"), file=sys.stderr)
    print(
        ("cancelled: " if summary.cancelled else "")
        + f"{summary.written} written, {summary.skipped} skipped (already done), "
        f"{summary.failed} failed of {summary.total} photos in {summary.seconds:.1f} s "
        f"({summary.rate:.1f} img/s) on {summary.provider}; outputs in {summary.out_dir}"
        + (f"; failures logged in {summary.log_path}" if summary.failed else "")
    )
    from engine.export.annotations import coco_path

    merged = coco_path(summary.out_dir, options.format)
    if merged is not None and merged.exists():
        print(f"COCO annotations of every photo done so far: {merged}")
    code = 130 if summary.cancelled else 1 if summary.failed or summary.stopped else 0
    if summary.abandoned_threads:
        # A thread abandoned by the cancel (stuck in a read, or inside GrabCut) would make the
        # interpreter's exit wait for it, or abort: seconds measured after a Ctrl-C. Nothing is
        # left to save (every output is written atomically), so end the process here.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
