"""Training speed of the layered-GAN methods on this machine: GAN steps per second.

For each method and size: build the method, run a few warm-up steps, then time ``--steps`` steps
on random data (data loading is negligible: the cache is in memory). ``--compare-transposed`` adds
the same nets with 4x4 stride-2 transposed convs in G, the layout of the calibration reference
(2.1 it/s at 64 px, batch 32, G width 16, D width 32), to measure the cost of resize-convs at equal
width. Prints JSON. Usage:
    python bench/train_speed.py [--sizes 32 64 128] [--batch 32] [--steps 5] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

from engine.config import NetConfig, RunConfig
from engine.methods import build_method


def measure(method: str, size: int, batch: int, steps: int, warmup: int, upsample: str) -> float:
    cfg = RunConfig(folder="-", out="-", method=method, size=size, batch=batch, steps=1,
                    net=NetConfig(upsample=upsample))
    torch.manual_seed(0)
    m = build_method(cfg, torch.device("cpu"))
    real = torch.rand(batch, 3, size, size) * 2 - 1
    for _ in range(warmup):
        m.step(real)
    t0 = time.perf_counter()
    for _ in range(steps):
        m.step(real)
    return steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128])
    ap.add_argument("--methods", nargs="+", default=["ilgan", "perturbgan"])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--compare-transposed", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = []
    for size in args.sizes:
        for method in args.methods:
            ups = ["resize", "transposed"] if args.compare_transposed else ["resize"]
            for upsample in ups:
                rate = measure(method, size, args.batch, args.steps, args.warmup, upsample)
                results.append({"method": method, "size": size, "batch": args.batch,
                                "upsample": upsample, "steps_per_s": round(rate, 3)})
                print(json.dumps(results[-1]), flush=True)
    print(json.dumps({
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(), "load_avg_end": os.getloadavg(), "machine": platform.machine(),
        "widths": {"g": NetConfig().g_width, "d": NetConfig().d_width},
        "results": results,
    }, indent=1))


if __name__ == "__main__":
    main()
