"""``peel demo-data OUT``: write a synthetic photo folder with exact masks."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo-data",
        help="write a synthetic demo folder (photos + exact masks)",
        description="Write COUNT synthetic photos to OUT/NAME.png, their exact masks to "
        "OUT/masks/NAME.png and statistics (true mean coverage) to OUT/demo.json. "
        "The same seed always gives the same bytes.",
    )
    p.add_argument("out", type=Path, metavar="OUT", help="folder to create (or a demo folder to rewrite)")
    p.add_argument("--count", type=int, default=200, help="number of images (default 200)")
    p.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.cli.main import CliError
    from engine.demo import make_demo_folder

    if args.count < 1:
        raise CliError("--count must be at least 1")
    if args.size < 16:
        raise CliError("--size must be at least 16")
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise CliError(f"not a folder: {out}")
    if out.is_dir() and any(out.iterdir()) and not (out / "demo.json").exists():
        # Never write into a user's own folder: only an empty folder or an earlier demo folder.
        raise CliError(f"{out} is not empty and is not a demo folder; choose a new folder")
    stats = make_demo_folder(out, count=args.count, size=args.size, seed=args.seed)
    print(
        f"wrote {stats['count']} images ({stats['size']} px, seed {stats['seed']}) to {out}; "
        f"mean object coverage {stats['mean_coverage']:.3f}"
    )
    return 0
