"""ReDO learning rate on CPU: the paper's 1e-4 (mask 1e-5) against a higher rate, same budget.

Prints one JSON object: the comparison report of a redo-only run (IoU etc. on the ground truth).
Usage: python bench/redo_lr.py FOLDER GT --lr 4e-4 --lr-mask 4e-5 --minutes 4 --size 32 --out DIR
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.compare import CompareConfig, run_compare  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("folder")
    p.add_argument("gt")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--lr-mask", type=float, default=1e-5)
    p.add_argument("--minutes", type=float, default=4.0)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO)
    cfg = CompareConfig(folder=a.folder, gt=a.gt, out=a.out, methods=("redo",), minutes=a.minutes,
                        size=a.size, overrides={"redo": {"lr": a.lr, "lr_mask": a.lr_mask}})
    report = run_compare(cfg)
    print(json.dumps({"lr": a.lr, "lr_mask": a.lr_mask, **report}, default=str))


if __name__ == "__main__":
    main()
