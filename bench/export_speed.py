"""Throughput of ``peel segment``'s pipeline: I/O bound vs torch eager vs onnxruntime (JSON).

Three runs of the same pipeline (``engine.export.masks.export_masks``: threaded decode + prepare,
shape buckets, threaded resize-back + PNG encode + atomic write), differing only in the model:
  io    a stand-in that returns zeros: decode + resize + encode alone, the upper bound;
  torch the UNet in torch eager (inference_mode, channels_last), as a user without ONNX would;
  onnx  the exported model in onnxruntime (``SegmenterSession``).
Photos are synthetic JPEGs (smooth noise + shapes) written to a temp folder: a set of small ones
(256 px) where the model dominates and a set of ~2000x1500 ones where decoding dominates.

Usage: python bench/export_speed.py [--small 300] [--large 50] [--sizes 64 128] [--repeats 3]
The machine may be shared: each figure is the median of ``--repeats`` runs, and the load
average is printed so contention can be judged.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.export.masks import ExportOptions, export_masks  # noqa: E402
from engine.export.onnx import export_onnx  # noqa: E402
from engine.export.sessions import SegmenterSession, cpu_threads  # noqa: E402
from engine.nets.unet import UNet, UNetConfig  # noqa: E402
from engine.segmenter.model import save_segmenter  # noqa: E402


def synthetic_photo(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    grid = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    img = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(6):
        colour = rng.integers(0, 256, 3).tolist()
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(w // 20, w // 4)), int(rng.integers(h // 20, h // 4)))
        cv2.ellipse(img, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
    noise = rng.normal(0, 12, img.shape).astype(np.float32)
    return np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def make_folder(folder: Path, count: int, h: int, w: int, seed: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        hh, ww = (h, w) if i % 2 == 0 else (w, h)  # both orientations: two padded shapes
        ok, buf = cv2.imencode(".jpg", synthetic_photo(rng, hh, ww), [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        (folder / f"img_{i:04d}.jpg").write_bytes(buf.tobytes())


class IoOnly:
    """Stand-in model: zeros of the right shape, so only the pipeline's own work is timed."""

    def __init__(self, size: int, stride: int) -> None:
        self.size, self.stride = size, stride

    def run(self, batch: np.ndarray) -> np.ndarray:
        return np.zeros((batch.shape[0], *batch.shape[2:]), np.float32)

    def describe(self) -> str:
        return "none (I/O bound)"


class TorchEager:
    def __init__(self, net: UNet, size: int) -> None:
        self.net = net.eval().to(memory_format=torch.channels_last)
        self.size, self.stride = size, net.stride

    def run(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(batch).contiguous(memory_format=torch.channels_last)
            return torch.sigmoid(self.net(x))[:, 0].numpy()

    def describe(self) -> str:
        return f"torch eager cpu ({torch.get_num_threads()} threads)"


def time_runs(runner, folder: Path, work: Path, repeats: int, batch: int) -> dict:
    rates = []
    for r in range(repeats):
        out = work / f"out-{time.monotonic_ns()}-{r}"
        summary = export_masks(runner, folder, out, ExportOptions(batch=batch))
        assert summary.failed == 0 and summary.written > 0
        rates.append(summary.written / summary.seconds)
    return {"img_per_s": round(statistics.median(rates), 2), "runs": [round(x, 2) for x in rates]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=300)
    parser.add_argument("--large", type=int, default=50)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()

    torch.set_num_threads(cpu_threads())
    result: dict = {
        "machine": {
            "cpu_threads": cpu_threads(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "load_avg_start": [round(x, 2) for x in os.getloadavg()],
        },
        "args": vars(args),
        "sets": {},
    }
    with tempfile.TemporaryDirectory(prefix="peel-bench-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        sets = {"small_256": (args.small, 256, 256), "large_2000x1500": (args.large, 1500, 2000)}
        for name, (count, h, w) in sets.items():
            make_folder(work / name, count, h, w, seed=len(name))
        result["photo_generation_s"] = round(time.perf_counter() - t0, 1)

        for size in args.sizes:
            torch.manual_seed(0)
            net = UNet(UNetConfig())
            run_dir = work / f"run-{size}"
            save_segmenter(run_dir / "segmenter.pt", net, size, "bench", "synthetic")
            report = export_onnx(run_dir)
            session = SegmenterSession(report.path, device="cpu")
            runners = {
                "io": IoOnly(size, net.stride),
                "torch": TorchEager(net, size),
                "onnx": session,
            }
            for set_name in sets:
                row: dict = {}
                for mode, runner in runners.items():
                    row[mode] = time_runs(runner, work / set_name, work, args.repeats, args.batch)
                    row[mode]["model"] = runner.describe()
                onnx_rate = row["onnx"]["img_per_s"]
                row["onnx_vs_torch"] = round(onnx_rate / row["torch"]["img_per_s"], 2)
                row["onnx_vs_io"] = round(onnx_rate / row["io"]["img_per_s"], 2)
                result["sets"][f"{set_name}@{size}"] = row
                print(json.dumps({f"{set_name}@{size}": row}), file=sys.stderr, flush=True)
    result["machine"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
