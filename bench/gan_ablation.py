"""Does the GAN earn its time? The default pipeline against ``peel train --no-gan`` at one budget.

    python bench/gan_ablation.py --split horses|flowers|demo --minutes 20 --out DIR
        [--seed 0] [--size 64] [--cores 0,1] [--device cpu|cuda] [--score-only]
        [--variants default,no-gan]

Both runs train on the split's training photos (links in DIR/photos), side by side, one pinned
core each (``taskset``, ``--threads 1``), so a busy machine slows both alike. Afterwards every
stage of both runs is scored on the training photos and on the held-out ones
(``bench/stage_scores.py``), with whether generated pairs were used in each stage (the
``segmenter-source`` events of ``metrics.jsonl``). ``--score-only`` rescores DIR's finished runs.
Prints JSON; ``difference`` is default − no-gan for the final segmenter.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from splits import dev_folders, ensure_photos, link_training_photos, load_split  # noqa: E402
from stage_scores import Scorer, score_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VARIANTS: dict[str, list[str]] = {"default": [], "no-gan": ["--no-gan"]}


def train_command(photos: Path, out: Path, extra: list[str], args: argparse.Namespace,
                  core: int | None) -> list[str]:
    cmd = [sys.executable, "-m", "engine.cli", "train", str(photos), "--out", str(out),
           "--minutes", str(args.minutes), "--size", str(args.size), "--seed", str(args.seed),
           "--device", args.device, *extra]
    if args.device == "cpu":
        cmd += ["--threads", "1"]
    if core is not None:
        cmd = ["taskset", "-c", str(core), *cmd]
    return cmd


def run_side_by_side(commands: dict[str, list[str]], logs: Path) -> dict[str, dict[str, Any]]:
    """Start every command at once; wait for all; exit codes and wall seconds per name."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    started = time.perf_counter()
    procs = {}
    for name, cmd in commands.items():
        with open(logs / f"{name}.log", "wb") as log_file:
            procs[name] = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log_file,
                                           stderr=subprocess.STDOUT)
    out = {}
    for name, proc in procs.items():
        rc = proc.wait()
        out[name] = {"rc": rc, "wall_s": round(time.perf_counter() - started, 1),
                     "command": " ".join(commands[name])}
    return out


def summarise(scored: dict[str, Any]) -> dict[str, Any]:
    """The final segmenter's scores and, per stage, whether generated pairs were used."""
    stages = scored["stages"]
    final = stages[-1] if stages else {}
    return {"final_train_iou": final.get("train_iou"), "final_heldout_iou": final.get("heldout_iou"),
            "gan_pairs_used": {s["stage"]: s["gan_pairs"] for s in stages if "gan_pairs" in s},
            "stages": stages}


def difference(runs: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    a, b = runs.get("default", {}), runs.get("no-gan", {})
    out: dict[str, float | None] = {}
    for part in ("train", "heldout"):
        x, y = a.get(f"final_{part}_iou"), b.get(f"final_{part}_iou")
        out[part] = round(x - y, 4) if x is not None and y is not None else None
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", required=True, choices=sorted(dev_folders()))
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--out", type=Path, required=True, metavar="DIR")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--cores", default="0,1", help="one core per run, default 0,1 ('' = unpinned)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--score-only", action="store_true", help="score DIR's finished runs only")
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help="which runs to train, comma-separated (default: both; one alone to "
                    "compare with the other's earlier run of unchanged code)")
    args = ap.parse_args(argv)

    folder = dev_folders()[args.split]
    ensure_photos(folder)
    split = load_split(args.split)
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"split": args.split, "minutes": args.minutes, "size": args.size,
                              "seed": args.seed, "load_before": os.getloadavg()[0]}
    if not args.score_only:
        photos = link_training_photos(folder, split, args.out / "photos")
        unknown = set(args.variants.split(",")) - set(VARIANTS)
        if unknown:
            ap.error(f"--variants: unknown {', '.join(sorted(unknown))} (known: {', '.join(VARIANTS)})")
        chosen = {name: VARIANTS[name] for name in args.variants.split(",")}
        cores = ([int(c) for c in args.cores.split(",")][: len(chosen)] if args.cores
                 else [None] * len(chosen))
        commands = {name: train_command(photos, args.out / name, extra, args, core)
                    for (name, extra), core in zip(chosen.items(), cores, strict=True)}
        report["training"] = run_side_by_side(commands, args.out)
    scorer = Scorer(folder, split)
    report["runs"] = {name: summarise(score_run(args.out / name, scorer, args.device))
                      for name in VARIANTS if (args.out / name).is_dir()}
    report["difference"] = difference(report["runs"])
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
