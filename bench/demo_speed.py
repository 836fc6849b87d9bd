"""Time ``make_demo_folder`` (the default 200 images at 128 px); prints one JSON object.

    .venv/bin/python bench/demo_speed.py [--count 200] [--size 128]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.demo import make_demo_folder  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--size", type=int, default=128)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        stats = make_demo_folder(Path(tmp) / "demo", count=args.count, size=args.size, seed=0)
        seconds = time.perf_counter() - t0
    print(json.dumps({
        "count": args.count, "size": args.size, "seconds": round(seconds, 2),
        "images_per_s": round(args.count / seconds, 1), "mean_coverage": stats["mean_coverage"],
    }))


if __name__ == "__main__":
    main()
