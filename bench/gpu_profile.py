"""Where does a GAN step's time go on a GPU? Steps/s by batch and size, and one profiled stretch.

    python bench/gpu_profile.py [--device cuda] [--steps 120] [--out DIR] [--json PATH]

The first GPU check (bench/RESULTS.md, 2026-12-04 session 3) measured 16-23 GAN steps/s at
batch 32 on an H200 with under 2 GB of its memory in use: about 50 ms a step, so the GPU idles
unless something on the host sets the pace. This script runs the GAN stage alone (``--steps``
runs with the prior and segmenter stages off) for each (size, batch) in the grid and reports
steps/s and images/s, then profiles the 64 px batch-32 step: the host's top functions (cProfile,
self time) and the device's busy time per step (torch.profiler, summed kernel time), so the
choice between a larger default batch, fewer launches or fewer host syncs rests on figures.
Prints JSON.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from splits import dev_folders, ensure_photos, link_training_photos, load_split  # noqa: E402

from engine.config import PipelineConfig, RunConfig  # noqa: E402
from engine.control import RunControl  # noqa: E402
from engine.events import Progress  # noqa: E402
from engine.train.runner import train  # noqa: E402

GRID = ((64, 32), (64, 128), (64, 512), (128, 32), (128, 128))


def gan_only(photos: Path, run: Path, size: int, batch: int, steps: int, device: str) -> RunConfig:
    config = RunConfig(folder=str(photos), out=str(run), size=size, batch=batch, steps=steps,
                       device=device, seed=0, checkpoint_every=10**6, preview_every=10**6)
    pipe = PipelineConfig(bootstrap=False, segmenter=False, rounds=0)
    return dataclasses.replace(config, pipeline=pipe)


def steps_per_s(config: RunConfig) -> float:
    rate = 0.0
    for event in train(config, RunControl()):
        if isinstance(event, Progress) and event.phase == "gan":
            rate = event.steps_per_s
    return rate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--grid", default="", help="SIZExBATCH,... (default: the built-in grid)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="peel-gpu-profile-"))
    grid = GRID if not args.grid else tuple(
        tuple(int(v) for v in cell.split("x")) for cell in args.grid.split(","))
    folder = dev_folders()["demo"]
    ensure_photos(folder)
    photos = link_training_photos(folder, load_split("demo"), out / "photos")
    report: dict[str, Any] = {"device": args.device, "torch": torch.__version__, "rows": []}

    def save() -> None:
        if args.json is not None:
            args.json.write_text(json.dumps(report, indent=2))

    for size, batch in grid:
        try:
            rate = steps_per_s(gan_only(photos, out / f"g{size}-{batch}", size, batch,
                                        args.steps, args.device))
            report["rows"].append({"size": size, "batch": batch, "steps_per_s": round(rate, 2),
                                   "images_per_s": round(rate * batch, 1)})
        except Exception as exc:  # a size that does not fit: record, go on
            report["rows"].append({"size": size, "batch": batch, "error": repr(exc)[:300]})
        save()
    profiled = gan_only(photos, out / "profiled", 64, 32, max(20, args.steps // 2), args.device)
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    steps_per_s(profiled)
    prof.disable()
    report["profiled_wall_s"] = round(time.perf_counter() - t0, 2)
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(30)
    report["host_top"] = [line for line in text.getvalue().splitlines() if line.strip()][:45]
    if args.device == "cuda":
        from torch.profiler import ProfilerActivity, profile

        steps = 30
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as tp:
            t0 = time.perf_counter()
            steps_per_s(gan_only(photos, out / "torchprof", 64, 32, steps, args.device))
            wall = time.perf_counter() - t0
        events = tp.key_averages()
        busy_us = sum(e.self_device_time_total for e in events)
        report["torch_profile"] = {
            "wall_s": round(wall, 2), "device_busy_s": round(busy_us / 1e6, 3),
            "kernel_launches": int(sum(e.count for e in events if e.self_device_time_total > 0)),
            "top_device": events.table(sort_by="self_device_time_total", row_limit=12),
            "top_host": events.table(sort_by="self_cpu_time_total", row_limit=12),
        }
    save()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
