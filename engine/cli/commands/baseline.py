"""``peel baseline grabcut IN_DIR OUT_DIR``: classic label-free masks to compare against."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "baseline",
        help="masks from a classic label-free baseline (GrabCut)",
        description="Compute masks with a classic method that needs no labels.",
    )
    methods = p.add_subparsers(dest="method", metavar="METHOD")
    methods.required = True
    g = methods.add_parser(
        "grabcut",
        help="GrabCut from a centred rectangle (10%% margin, 5 iterations)",
        description="Write OUT_DIR/NAME.png (0/255) for every photo of IN_DIR. Existing outputs "
        "are kept, so an interrupted run resumes; unreadable photos are reported and skipped. "
        "Exit code 0 when every photo has a mask, 1 when some failed, 2 for bad arguments.",
    )
    g.add_argument("in_dir", type=Path, metavar="IN_DIR", help="folder of photos (read only)")
    g.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="folder for the masks")
    g.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    g.add_argument("--margin", type=float, default=0.1, help="rectangle inset per side (default 0.1)")
    g.add_argument("--iters", type=int, default=5, help="GrabCut iterations (default 5)")
    g.set_defaults(func=run_grabcut)


def run_grabcut(args: argparse.Namespace) -> int:
    from engine.baselines.grabcut import grabcut_folder
    from engine.cli.interrupt import first_interrupt_sets
    from engine.cli.main import CliError
    from engine.cli.progress import ProgressLine
    from engine.imageio import scan_images
    from engine.text import one_line

    if not args.in_dir.is_dir():
        raise CliError(f"IN_DIR is not a folder: {args.in_dir}")
    if args.out_dir.exists() and not args.out_dir.is_dir():
        raise CliError(f"OUT_DIR is not a folder: {args.out_dir}")
    if args.in_dir.resolve() == args.out_dir.resolve():
        raise CliError("OUT_DIR must differ from IN_DIR (photos are never overwritten)")
    if args.workers is not None and args.workers < 1:
        raise CliError("--workers must be at least 1")
    if not 0.0 <= args.margin < 0.5:
        raise CliError("--margin must be in [0, 0.5)")
    if args.iters < 1:
        raise CliError("--iters must be at least 1")
    if not scan_images(args.in_dir):
        raise CliError(f"no photos in {args.in_dir}")
    line = ProgressLine("baseline grabcut")
    cancel = threading.Event()
    try:
        with first_interrupt_sets(cancel):
            result = grabcut_folder(
                args.in_dir, args.out_dir, workers=args.workers, margin=args.margin,
                iters=args.iters, progress=lambda done, total: line(done, total), cancel=cancel,
            )
    finally:
        line.close()
    for bad in result.bad[:20]:
        print(one_line(f"skipped {bad.path}: {bad.reason}"), file=sys.stderr)
    if len(result.bad) > 20:
        print(f"... and {len(result.bad) - 20} more", file=sys.stderr)
    if result.cancelled:
        print(f"cancelled: wrote {result.written} masks to {args.out_dir}; run the same command "
              "again to continue")
        return 130
    if result.bad and not result.written and not result.skipped_existing:
        raise CliError(f"no mask written: all {len(result.bad)} photos failed", exit_code=1)
    print(
        f"wrote {result.written} masks to {args.out_dir}; kept {result.skipped_existing} "
        f"existing; {len(result.bad)} unreadable"
    )
    return 1 if result.bad else 0
