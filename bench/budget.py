"""Does ``peel train --minutes M`` hold its budget, and is what it ends with worth it?

    python bench/budget.py --folder PHOTOS:GT_MASKS [--folder ...] --minutes 1 2 5 10 20
        [--size 32] [--cpu 0] [--out DIR] [--ignore IGNORE_DIR]

For each folder and each M: runs ``peel train PHOTOS --minutes M --threads 1`` pinned to one core
(``taskset -c CPU``) as a new user would, times its wall clock against the goal M x 1.05 + 15 s
(issue #16), reads the plan the run chose from its ``metrics.jsonl``, segments the folder's photos
with the run's ``segmenter.pt`` and scores it with ``engine.metrics`` against the ground truth
(used only for scoring), next to ``peel baseline grabcut`` on the same photos (run once per folder,
pinned the same way). Prints one JSON object. For the busy-machine table, run a second copy beside
it on the other core (``--cpu 1``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality import score_run  # noqa: E402

from engine.imageio import scan_images  # noqa: E402
from engine.metrics import evaluate_folders  # noqa: E402

log = logging.getLogger("bench.budget")
ROOT = Path(__file__).resolve().parents[1]


def peel(args: list[str], cpu: int) -> tuple[int, float, str]:
    """Run a ``peel`` command pinned to one core; (exit code, wall seconds, output tail)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = ["taskset", "-c", str(cpu), sys.executable, "-m", "engine.cli", *args]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    return done.returncode, time.perf_counter() - t0, (done.stdout + done.stderr)[-2000:]


def plan_of(run: Path) -> dict:
    """The last plan the run logged (the one it ended with, after any dropped stage)."""
    plans = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
             if '"event": "plan"' in line]
    return plans[-1] if plans else {}


def score(pred: Path, gt: Path, ignore: Path | None) -> float:
    return round(float(evaluate_folders(pred, gt, ignore)["iou"]), 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folder", action="append", required=True, metavar="PHOTOS:GT")
    ap.add_argument("--minutes", type=float, nargs="+", default=[1, 2, 5, 10, 20])
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--cpu", type=int, default=0, help="the core to pin to (taskset -c)")
    ap.add_argument("--ignore", type=Path, help="ignore masks (oxford-flowers17's ignore/)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/peel-budget"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    load_start = os.getloadavg()
    rows = []
    for spec in args.folder:
        photos_dir, gt_dir = (Path(p) for p in spec.split(":", 1))
        work = args.out / photos_dir.parent.name / photos_dir.name
        photos = scan_images(photos_dir)
        grabcut_dir = work / "grabcut"
        code, grabcut_s, tail = peel(["baseline", "grabcut", str(photos_dir), str(grabcut_dir),
                                      "--workers", "1"], args.cpu)
        grabcut_iou = score(grabcut_dir, gt_dir, args.ignore)
        for minutes in args.minutes:
            run = work / f"run-{minutes:g}min"
            shutil.rmtree(run, ignore_errors=True)
            code, wall, tail = peel(["train", str(photos_dir), "--out", str(run), "--minutes",
                                     f"{minutes:g}", "--size", str(args.size), "--threads", "1"],
                                    args.cpu)
            row = {"folder": str(photos_dir), "photos": len(photos), "minutes": minutes,
                   "size": args.size, "exit": code, "wall_s": round(wall, 1),
                   "goal_s": round(minutes * 60 * 1.05 + 15, 1),
                   "grabcut_iou": grabcut_iou, "grabcut_s": round(grabcut_s, 1)}
            row["within_goal"] = wall <= row["goal_s"]
            if (run / "segmenter.pt").exists():
                row["iou"] = score_run(run, photos, gt_dir, args.ignore)
                row["beats_grabcut"] = row["iou"] >= grabcut_iou
                plan = plan_of(run)
                row["plan"] = plan.get("stages")
                row["plan_note"] = plan.get("note")
                row["rates"] = plan.get("rates")  # what the run's probe measured
            else:
                row["error"] = tail.strip().splitlines()[-1] if tail.strip() else "no segmenter.pt"
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    print(json.dumps({"cpu": args.cpu, "load_start": load_start, "load_end": os.getloadavg(),
                      "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
