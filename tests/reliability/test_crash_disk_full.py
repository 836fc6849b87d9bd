"""Issue #9: a full disk during a checkpoint or mask write gives a clear error, stops, and leaves
the previous files intact (every write is atomic); after space is freed the run continues.

The disk is simulated: ``engine.atomic`` opens its temp files through a wrapper whose writes fail
with ENOSPC once a byte budget is spent, and the free-space query reports an empty disk. The
benchmark (bench/crash_loop.py) also tries a real 2 MB tmpfs.
"""

from __future__ import annotations

import builtins
import errno
import hashlib
import os
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from train_helpers import run_all, tiny_config

import engine.atomic
from engine.atomic import DiskFullError, write_bytes
from engine.control import RunControl
from engine.events import CheckpointSaved, Failed, Finished
from engine.export.masks import ExportOptions, export_masks
from engine.runs import checkpoint as ckpt
from engine.train.runner import train


class FullDisk:
    """``open`` for engine.atomic: writes succeed until ``budget`` bytes, then raise ENOSPC."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.lock = threading.Lock()
        self.refused = 0

    def open(self, path, mode="r", *args, **kwargs):
        fh = builtins.open(path, mode, *args, **kwargs)
        return _Limited(fh, self) if "w" in mode else fh


class _Limited:
    def __init__(self, fh, disk: FullDisk) -> None:
        self._fh, self._disk = fh, disk

    def write(self, data) -> int:
        n = memoryview(data).nbytes
        with self._disk.lock:
            if n > self._disk.budget:
                self._disk.refused += 1
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self._disk.budget -= n
        return self._fh.write(data)

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._fh.close()


def fill_disk(monkeypatch: pytest.MonkeyPatch, budget: int) -> FullDisk:
    disk = FullDisk(budget)
    monkeypatch.setattr(engine.atomic, "open", disk.open, raising=False)
    monkeypatch.setattr(engine.atomic, "_no_space", lambda folder: True)
    return disk


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_write_bytes_on_a_full_disk_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "mask.png"
    write_bytes(target, b"old content")
    fill_disk(monkeypatch, 4)
    with pytest.raises(DiskFullError) as info:
        write_bytes(target, b"new content, longer than the budget")
    assert info.value.errno == errno.ENOSPC and isinstance(info.value, OSError)
    assert "no space left" in str(info.value) and str(target) in str(info.value)
    assert "previous mask.png is kept" in str(info.value)
    assert target.read_bytes() == b"old content"
    assert [p.name for p in tmp_path.iterdir()] == ["mask.png"]  # no temp file left behind


def test_checkpoint_on_a_full_disk_fails_clearly_and_keeps_the_last_one(tiny_demo_folder, tmp_path, monkeypatch):
    run = tmp_path / "run"
    cfg = tiny_config(tiny_demo_folder, run, steps=6, checkpoint_every=2, preview_every=100)
    control = RunControl()
    for ev in train(cfg, control):
        if isinstance(ev, CheckpointSaved):
            control.stop()
    before = digests(run / "checkpoints")
    assert set(before) == {"step-0000002.pt", "good.pt"}

    disk = fill_disk(monkeypatch, 16 * 1024)  # config.json fits, a checkpoint does not
    events = run_all(cfg, resume=True)
    assert disk.refused >= 1
    failed = events[-1]
    assert isinstance(failed, Failed), failed
    assert failed.error.startswith("[Errno 28] no space left on the disk while writing")
    assert "step-0000004.pt" in failed.error and "free some space" in failed.error
    assert "Traceback" not in failed.error
    # The previous checkpoints are byte-for-byte intact, and no temp file is left.
    assert digests(run / "checkpoints") == before
    for name in before:
        assert ckpt.load(run / "checkpoints" / name)["step"] == 2

    monkeypatch.undo()  # space freed: the run continues from the intact checkpoint
    resumed = run_all(cfg, resume=True)
    assert resumed[0].step == 2 and isinstance(resumed[-1], Finished) and resumed[-1].step == 6


class Halves:
    """A stand-in model: object on the left half (fast, deterministic, no ONNX needed)."""

    size, stride = 32, 8

    def run(self, batch: np.ndarray) -> np.ndarray:
        n, _, h, w = batch.shape
        out = np.zeros((n, h, w), np.float32)
        out[:, :, : w // 2] = 1.0
        return out

    def describe(self) -> str:
        return "stand-in"


def photos(folder: Path, count: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        cv2.imwrite(str(folder / f"p{i:02d}.png"), rng.integers(0, 255, (48, 40, 3), dtype=np.uint8))


def masks_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def test_mask_export_stops_at_a_full_disk_and_a_rerun_finishes(tmp_path, monkeypatch):
    src, out = tmp_path / "in", tmp_path / "out"
    photos(src, 20)
    options = ExportOptions(batch=2, workers=1)
    clean = export_masks(Halves(), src, tmp_path / "clean", options)
    assert clean.written == 20 and clean.stopped is None
    one_mask = len(next(iter(masks_of(tmp_path / "clean").values())))

    disk = fill_disk(monkeypatch, 5 * one_mask + one_mask // 2)  # room for 5 masks, not 6
    first = export_masks(Halves(), src, out, options)
    assert first.stopped is not None and "no space left" in first.stopped and not first.cancelled
    assert first.written == 5
    # Stopped at the full disk instead of failing every remaining photo one by one.
    assert 1 <= first.failed <= 8 and disk.refused == first.failed  # the writes already queued
    assert first.written + first.failed < 20
    assert all("no space left" in bad.reason for bad in first.failures)
    written = masks_of(out)
    assert len(written) == 5 and all(written[k] == masks_of(tmp_path / "clean")[k] for k in written)
    assert not [p for p in out.iterdir() if p.name.startswith(".p")]  # no temp files
    assert "stopped (" in (out / "peel-segment.log").read_text()

    monkeypatch.undo()
    second = export_masks(Halves(), src, out, options)
    assert second.stopped is None and (second.skipped, second.written) == (5, 15)
    assert masks_of(out) == masks_of(tmp_path / "clean")


def test_segment_cli_says_the_disk_is_full(tmp_path, monkeypatch, capsys):
    from engine.cli.commands import segment

    src = tmp_path / "in"
    photos(src, 4)
    monkeypatch.setattr("engine.export.masks._open_model", lambda model, device, shard=None: Halves())
    fill_disk(monkeypatch, 0)
    args = segment_args(src, tmp_path / "out")
    assert segment.run(args) == 1
    err = capsys.readouterr().err
    assert "error: stopped early: [Errno 28] no space left on the disk while writing" in err


def segment_args(src: Path, out: Path):
    import argparse

    from engine.cli.commands.segment import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["segment", "--model", "unused.onnx", str(src), str(out), "--workers", "1"])


def test_a_full_disk_leaves_rolling_and_good_checkpoints_alone(tmp_path, monkeypatch):
    run = tmp_path / "run"
    ckpt.save_rolling(run, 2, {"step": 2, "w": torch.zeros(3)}, keep=3, good=True)
    before = digests(run / "checkpoints")
    fill_disk(monkeypatch, 0)
    with pytest.raises(DiskFullError):
        ckpt.save_rolling(run, 4, {"step": 4, "w": torch.ones(3)}, keep=3, good=True)
    assert digests(run / "checkpoints") == before
