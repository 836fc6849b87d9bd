"""Crash safety (#9): kill -9 training and mask export at random moments, again and again.

After every kill it checks that each file the run has on disk is whole (every checkpoint and
segmenter loads with ``weights_only=True``, every PNG decodes, JSON parses), resumes, and at the
end compares the outputs with those of an uninterrupted run. Temp files a kill leaves must be
ignored, then removed by the next run. Prints one JSON object.

    python bench/crash_loop.py --train-kills 12 --segment-kills 12 --seed 0

Training runs in a child process through ``engine.cli.commands.train.consume`` (what
``peel train`` runs) with a tiny configuration (32 px, width-8 nets, checkpoints every 4 steps,
a few segmenter steps): the real CLI's defaults take minutes per run on 2 CPU cores. Mask export
runs the real ``peel segment`` command. tests/reliability/test_crash_*.py import this file.

``--tmpfs`` also fills a real 2 MB tmpfs (needs root) with a checkpoint and with masks.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = 150  # 640 x 480: a few seconds of `peel segment`, so kills land mid-run
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The child: the same event consumer as `peel train`, on a tiny configuration given as JSON.
TRAIN_CHILD = """
import json, sys
from engine.config import RunConfig
from engine.cli.commands.train import consume
config = RunConfig.from_dict(json.loads(sys.argv[1]))
sys.exit(consume(config, resume=sys.argv[2] == "resume", out=sys.stdout))
"""


def tiny_train_config(folder: Path, out: Path, steps: int = 16) -> dict[str, Any]:
    """Every stage of the default pipeline (bootstrap, gan, segmenter, round 1), tiny and by steps."""
    from dataclasses import replace

    from engine.config import GuardConfig, NetConfig, PipelineConfig, RunConfig

    cfg = RunConfig(
        folder=str(folder), out=str(out), method="ilgan", size=32, batch=4, steps=steps,
        device="cpu", threads=1, seed=3, log_every=2, preview_every=4, checkpoint_every=4,
        preview_count=3, net=NetConfig(g_width=8, d_width=8, z_dim=16),
        guard=GuardConfig(grace_steps=1000),
    )
    pipe = replace(PipelineConfig(), segmenter_steps=6, segmenter_batch=4)
    return replace(cfg, pipeline=pipe).to_dict()


# -- what a kill may leave ---------------------------------------------------------------------
def is_temp(path: Path) -> bool:
    from engine.runs.checkpoint import _TEMP

    return bool(_TEMP.match(path.name))


def check_run_dir(run: Path) -> dict[str, Any]:
    """Every file of a run folder is whole: returns the broken ones (must be none) and temps."""
    import cv2

    from engine.runs import checkpoint as ckpt
    from engine.segmenter.model import load_segmenter

    broken: list[str] = []
    temps: list[str] = []
    checked = 0
    if not run.exists():
        return {"broken": broken, "temps": temps, "checked": 0}
    for path in sorted(p for p in run.rglob("*") if p.is_file()):
        rel = str(path.relative_to(run))
        if is_temp(path):
            temps.append(rel)
            continue
        checked += 1
        try:
            if path.name in ("segmenter.pt", "prior.pt") or path.name.startswith("segmenter-"):
                load_segmenter(path)
            elif path.suffix == ".pt":
                ckpt.load(path)
            elif path.suffix == ".png":
                if cv2.imread(str(path), cv2.IMREAD_UNCHANGED) is None:
                    raise ValueError("does not decode")
            elif path.suffix == ".json":
                json.loads(path.read_text())
            elif path.name == "metrics.jsonl":
                lines = path.read_text().splitlines()
                for line in lines[:-1]:  # an append log: only its last line may be cut
                    json.loads(line)
        except Exception as exc:  # noqa: BLE001 - every failure is a finding
            broken.append(f"{rel}: {type(exc).__name__}: {exc}")
    return {"broken": broken, "temps": temps, "checked": checked}


def check_mask_dir(out: Path, src: Path) -> dict[str, Any]:
    """Every mask PNG decodes at its photo's size; hidden temp files are listed apart."""
    import cv2

    broken, temps, checked = [], [], 0
    if not out.exists():
        return {"broken": broken, "temps": temps, "checked": 0}
    for path in sorted(out.iterdir()):
        if path.suffix != ".png":
            continue
        if path.name.startswith("."):
            temps.append(path.name)
            continue
        checked += 1
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        photo = cv2.imread(str(src / path.name), cv2.IMREAD_UNCHANGED)
        if img is None or photo is None or img.shape[:2] != photo.shape[:2]:
            broken.append(path.name)
    return {"broken": broken, "temps": temps, "checked": checked}


# -- kill loops ------------------------------------------------------------------------------
class _Child:
    """A child process whose output is read in a thread, so that it never blocks on a pipe."""

    def __init__(self, cmd: list[str]) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate() or self.proc.poll() is not None:
                return predicate()
            time.sleep(0.02)
        return False

    def kill(self) -> bool:
        """SIGKILL; True if it was still running (a real kill, not a finished run)."""
        alive = self.proc.poll() is None
        if alive:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._reader.join(timeout=10)
        return alive

    def finish(self, timeout: float) -> int:
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self._reader.join(timeout=10)
        return self.proc.returncode


def train_reference(config: dict[str, Any]) -> None:
    """The uninterrupted run, in this process (the child code path is the same engine code)."""
    import torch

    from engine.config import RunConfig
    from engine.events import Failed
    from engine.train.runner import train

    threads = torch.get_num_threads()
    try:
        for ev in train(RunConfig.from_dict(config)):
            if isinstance(ev, Failed):
                raise RuntimeError(ev.error)
    finally:
        torch.set_num_threads(threads)


def final_train_outputs(run: Path) -> dict[str, Any]:
    """What must match the uninterrupted run: the last checkpoint's tensors and every segmenter."""
    import torch

    from engine.runs import checkpoint as ckpt

    last = ckpt.load(ckpt.list_checkpoints(run)[-1])
    out: dict[str, Any] = {"step": last["step"], "stage_index": last["stage_index"]}
    out["method"] = _tensors(last["method"])
    for rel in ("segmenter.pt", "bootstrap/prior.pt"):
        if (run / rel).exists():
            out[rel] = _tensors(torch.load(run / rel, weights_only=True)["state_dict"])
    return out


def _tensors(state: Any, prefix: str = "") -> dict[str, Any]:
    import torch

    flat: dict[str, Any] = {}
    if isinstance(state, dict):
        for k, v in state.items():
            flat.update(_tensors(v, f"{prefix}{k}."))
    elif isinstance(state, torch.Tensor):
        flat[prefix.rstrip(".")] = state
    return flat


def max_difference(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Largest absolute difference between two ``final_train_outputs`` (inf if shapes differ)."""
    worst = 0.0 if (a["step"], a["stage_index"]) == (b["step"], b["stage_index"]) else float("inf")
    for part in ("method", "segmenter.pt", "bootstrap/prior.pt"):
        x, y = a.get(part, {}), b.get(part, {})
        if x.keys() != y.keys():
            return float("inf")
        for k in x:
            if x[k].shape != y[k].shape:
                return float("inf")
            if x[k].is_floating_point():
                worst = max(worst, float((x[k].float() - y[k].float()).abs().max()) if x[k].numel() else 0.0)
            elif not bool((x[k] == y[k]).all()):
                return float("inf")
    return worst


def train_kill_loop(folder: Path, work: Path, kills: int, seed: int, steps: int = 16,
                    max_delay_s: float = 6.0, timeout_s: float = 600) -> dict[str, Any]:
    """Kill a tiny `peel train` ``kills`` times at random moments, resuming after each kill.

    A run that finishes before the next kill is compared with the uninterrupted one and a new
    run (a new round) takes the remaining kills. Only kills that land before the run printed
    its end count.
    """
    rng = random.Random(seed)
    ref_dir = work / "train-reference"
    shutil.rmtree(ref_dir, ignore_errors=True)
    t0 = time.perf_counter()
    train_reference(tiny_train_config(folder, ref_dir, steps))
    reference_s = time.perf_counter() - t0
    reference = final_train_outputs(ref_dir)

    report: dict[str, Any] = {"kills": 0, "resumes": 0, "rounds": 0, "killed_at": [],
                              "half_written": [], "temps_seen": 0, "files_checked": 0,
                              "temps_left_at_end": [], "max_abs_difference": 0.0,
                              "reference_s": round(reference_s, 1)}
    while report["kills"] < kills or report["rounds"] == 0:
        report["rounds"] += 1
        run = work / f"train-killed-{report['rounds']}"
        shutil.rmtree(run, ignore_errors=True)
        config = json.dumps(tiny_train_config(folder, run, steps))
        attempt = 0
        while True:
            child = _Child([sys.executable, "-c", TRAIN_CHILD, config, "resume" if attempt else "new"])
            report["resumes"] += bool(attempt)
            attempt += 1
            if report["kills"] < kills:
                child.wait_for(lambda c=child: any(x.startswith("training ") for x in c.lines), timeout_s)
                time.sleep(rng.uniform(0.0, max_delay_s))
                ended = any(x.startswith(("finished at", "error:")) for x in child.lines)
                if child.kill() and not ended:
                    report["kills"] += 1
                    report["killed_at"].append(_last_step(child.lines))
                    state = check_run_dir(run)
                    report["half_written"] += state["broken"]
                    report["temps_seen"] += len(state["temps"])
                    report["files_checked"] += state["checked"]
                    _plant_temps(run)
                    continue
                if child.proc.returncode not in (0, -signal.SIGKILL):
                    raise RuntimeError("training child failed:\n" + "\n".join(child.lines[-20:]))
                if not ended:  # killed before it printed anything: try again
                    continue
            elif child.finish(timeout_s) != 0:
                raise RuntimeError("training child failed:\n" + "\n".join(child.lines[-20:]))
            break
        state = check_run_dir(run)
        report["half_written"] += state["broken"]
        report["temps_left_at_end"] += state["temps"]
        diff = max_difference(reference, final_train_outputs(run))
        report["max_abs_difference"] = max(report["max_abs_difference"], diff)
    report["equal_to_uninterrupted"] = report["max_abs_difference"] == 0.0
    return report


def _plant_temps(run: Path) -> None:
    """What a kill in the middle of a write leaves (a kill rarely lands inside one by chance):
    half-written temp files that the resumed run must neither load nor keep."""
    for rel in ("checkpoints/.step-9999999.pt.killed00.pt", ".segmenter.pt.killed00.pt",
                "previews/.step-9999999.png.killed00.png", "bootstrap/masks/.k.png.killed00.png"):
        path = run / rel
        if path.parent.is_dir():
            path.write_bytes(b"PK\x03\x04 half a file")


def _last_step(lines: list[str]) -> str:
    for line in reversed(lines):
        if "step" in line:
            return line.strip()[:80]
    return "before the first step"


def segment_kill_loop(model: Path, src: Path, clean: Path, work: Path, kills: int, seed: int,
                      max_delay_s: float = 1.5, timeout_s: float = 600) -> dict[str, Any]:
    """Kill `peel segment` ``kills`` times at random moments, rerunning it after each kill.

    Only kills that land while masks are still missing count; a folder that is complete is
    compared byte for byte with the uninterrupted export and a new one (a new round) starts.
    """
    rng = random.Random(seed)
    total = len([p for p in src.iterdir() if p.suffix == ".png"])
    theirs = {p.name: p.read_bytes() for p in clean.glob("*.png") if not p.name.startswith(".")}
    report: dict[str, Any] = {"kills": 0, "resumes": 0, "rounds": 0, "masks_at_kill": [],
                              "half_written": [], "temps_seen": 0, "files_checked": 0,
                              "temps_left_at_end": [], "equal_to_uninterrupted": True}
    while report["kills"] < kills or report["rounds"] == 0:
        report["rounds"] += 1
        out = work / f"segment-killed-{report['rounds']}"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "-m", "engine.cli", "segment", "--model", str(model), str(src),
               str(out), "--batch", "1", "--workers", "1"]
        log = out / "peel-segment.log"
        attempt = 0
        while True:
            child = _Child(cmd)
            report["resumes"] += bool(attempt)
            attempt += 1
            if report["kills"] < kills:
                starts = log.read_text().count(" start: ") if log.exists() else 0
                child.wait_for(
                    lambda s=starts, lg=log: lg.exists() and lg.read_text().count(" start: ") > s,
                    timeout_s)
                time.sleep(rng.uniform(0.0, max_delay_s))
                alive = child.kill()
                state = check_mask_dir(out, src)
                if alive and state["checked"] < total:
                    report["kills"] += 1
                    report["masks_at_kill"].append(state["checked"])
                    report["half_written"] += state["broken"]
                    report["temps_seen"] += len(state["temps"])
                    report["files_checked"] += state["checked"]
                    continue
                if not alive and child.proc.returncode != 0:
                    raise RuntimeError("segment child failed:\n" + "\n".join(child.lines[-20:]))
                if state["checked"] < total:
                    continue
            elif child.finish(timeout_s) != 0:
                raise RuntimeError("segment child failed:\n" + "\n".join(child.lines[-20:]))
            break
        state = check_mask_dir(out, src)
        report["half_written"] += state["broken"]
        report["temps_left_at_end"] += state["temps"]
        ours = {p.name: p.read_bytes() for p in out.glob("*.png") if not p.name.startswith(".")}
        report["masks"] = len(ours)
        report["equal_to_uninterrupted"] &= ours == theirs
    return report


# -- a real full disk ------------------------------------------------------------------------
def tmpfs_check(work: Path, model: Path, src: Path) -> dict[str, Any]:
    """Fill a real 2 MB tmpfs: a checkpoint and a mask export must fail clearly, keeping files."""
    import torch

    from engine.atomic import DiskFullError
    from engine.export.masks import ExportOptions, export_masks
    from engine.runs import checkpoint as ckpt

    mnt = work / "tmpfs"
    mnt.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return {"skipped": f"mount failed: {done.stderr.strip()}"}
    try:
        result: dict[str, Any] = {}
        run = mnt / "run"
        ckpt.save_rolling(run, 4, {"step": 4, "w": torch.zeros(1000)}, keep=3, good=True)
        try:
            ckpt.save_rolling(run, 8, {"step": 8, "w": torch.zeros(1_000_000)}, keep=3, good=True)
            result["checkpoint"] = "no error (unexpected)"
        except DiskFullError as exc:
            result["checkpoint_error"] = str(exc)
        files = sorted(p.name for p in (run / "checkpoints").iterdir())
        result["checkpoint_files_after"] = files
        result["checkpoint_previous_loads"] = all(
            ckpt.load(run / "checkpoints" / n)["step"] == 4 for n in files)
        # Leave ~150 kB free: room for some masks, not for all of them.
        free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
        (mnt / "filler").write_bytes(b"\0" * max(0, free - 150 * 1024))
        out = mnt / "masks"
        summary = export_masks(model, src, out, ExportOptions(batch=1, workers=1, format="soft"))
        result["export"] = {"written": summary.written, "failed": summary.failed,
                            "stopped": summary.stopped, "photos": summary.total}
        (mnt / "filler").unlink()  # space freed: a rerun finishes the folder
        rerun = export_masks(model, src, out, ExportOptions(batch=1, workers=1, format="soft"))
        result["rerun"] = {"written": rerun.written, "skipped": rerun.skipped, "failed": rerun.failed,
                           "stopped": rerun.stopped}
        state = check_mask_dir(out, src)
        result["export_masks_on_disk"] = state["checked"]
        result["export_masks_broken"] = state["broken"]
        result["export_temps_left"] = state["temps"]
        return result
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


# -- inputs ------------------------------------------------------------------------------------
def make_inputs(work: Path) -> tuple[Path, Path, Path, Path]:
    """A 12-photo demo folder, a tiny exported segmenter, photos to segment and their masks."""
    sys.path.insert(0, str(ROOT / "tests"))
    import numpy as np
    from export_helpers import make_tiny_segmenter, shapes_photo

    from engine.cli.main import main
    from engine.demo import make_demo_folder
    from engine.export.masks import ExportOptions, export_masks

    demo = work / "demo"
    if not (demo / "demo.json").exists():
        make_demo_folder(demo, count=12, size=64, seed=7)
    model_dir = work / "model"
    if not (model_dir / "segmenter.onnx").exists():
        model_dir.mkdir(parents=True, exist_ok=True)
        make_tiny_segmenter(model_dir / "segmenter.pt")
        assert main(["export-onnx", str(model_dir)]) == 0
    photos = work / "photos"
    if not photos.exists():
        import cv2

        photos.mkdir(parents=True)
        rng = np.random.default_rng(60)
        for i in range(PHOTOS):
            h, w = (480, 640) if i % 2 else (640, 480)
            cv2.imwrite(str(photos / f"photo_{i:03d}.png"), shapes_photo(h, w, rng)[:, :, ::-1])
    clean = work / "segment-clean"
    if not clean.exists():
        export_masks(model_dir / "segmenter.onnx", photos, clean, ExportOptions(device="cpu"))
    return demo, model_dir / "segmenter.onnx", photos, clean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-kills", type=int, default=12)
    parser.add_argument("--segment-kills", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--work", type=Path, help="working folder (default: a temp folder)")
    parser.add_argument("--tmpfs", action="store_true", help="also fill a real 2 MB tmpfs (root)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    work = args.work or Path(tempfile.mkdtemp(prefix="peel-crash-"))
    work.mkdir(parents=True, exist_ok=True)
    demo, model, photos, clean = make_inputs(work)
    t0 = time.perf_counter()
    result: dict[str, Any] = {"seed": args.seed, "work": str(work)}
    result["train"] = train_kill_loop(demo, work, args.train_kills, args.seed, args.steps)
    result["segment"] = segment_kill_loop(model, photos, clean, work, args.segment_kills, args.seed)
    if args.tmpfs:
        result["tmpfs"] = tmpfs_check(work, model, photos)
    result["files_lost"] = len(result["train"]["half_written"]) + len(result["segment"]["half_written"])
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
