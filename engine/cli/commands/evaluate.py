"""``peel evaluate PRED_DIR GT_DIR``: score predicted masks against ground truth."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score predicted masks against ground-truth masks",
        description="Per-image accuracy, foreground IoU, mIoU and maxF (beta^2 = 0.3), averaged "
        "over images, threshold 0.5. Masks match by file stem; predictions are resized to the "
        "ground truth's size; a missing prediction counts as an empty mask. Exit code 1 when "
        "no prediction matches a ground-truth name.",
    )
    p.add_argument("pred_dir", type=Path, metavar="PRED_DIR", help="predicted masks (8-bit, soft or 0/255)")
    p.add_argument("gt_dir", type=Path, metavar="GT_DIR", help="ground-truth masks (0/255)")
    p.add_argument("--ignore", type=Path, metavar="DIR", help="masks of pixels to leave out (255 = ignore)")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.cli.main import CliError
    from engine.cli.progress import ProgressLine
    from engine.imageio import scan_images
    from engine.metrics import evaluate_folders, format_table

    for label, folder in (("PRED_DIR", args.pred_dir), ("GT_DIR", args.gt_dir), ("--ignore", args.ignore)):
        if folder is not None and not folder.is_dir():
            raise CliError(f"{label} is not a folder: {folder}")
    if not scan_images(args.gt_dir):
        raise CliError(f"no mask images in GT_DIR {args.gt_dir}")
    line = ProgressLine("evaluate", unit="masks")
    try:
        result = evaluate_folders(args.pred_dir, args.gt_dir, args.ignore,
                                  progress=lambda done, total: line(done, total))
    finally:
        line.close()
    if result["count"] == 0:
        raise CliError(f"no readable ground-truth masks in {args.gt_dir}")
    matched = result["count"] - result["missing_count"] - len(result["unreadable_predictions"])
    if matched <= 0:
        raise CliError(
            f"no readable prediction in {args.pred_dir} matches a ground-truth mask of {args.gt_dir} "
            f"({result['count']} masks; predictions match by file name without extension)",
            exit_code=1,
        )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_table(result))
    return 0
