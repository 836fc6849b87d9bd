"""Issue #15: hostile files and faults. Nothing in a photo folder or a model file may hang Peel,
exhaust its memory or end a run with a traceback; bad input is one line and skipped.

Memory-heavy measurements (a real 20000 x 20000 TIFF bomb, peak RSS per case) are in
``bench/bad_input.py --hostile``; here the bombs are refused from their headers, which is what
keeps them cheap, and every case runs in well under a few seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from corpus import permissions_enforced
from hostile import (
    contract_model,
    link,
    make_fifo,
    photo_folder,
    sparse_file,
)
from in_process import peel, read_in_thread

from engine.imageio import ImageReadError, read_rgb, scan_images

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8:strict"}


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine.cli.main", *args], capture_output=True,
                          text=True, errors="replace", timeout=timeout, cwd=ROOT, env=ENV)


def no_traceback(res: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in res.stderr + res.stdout, res.stderr


# --- file-system entries ----------------------------------------------------------------------


def test_fifos_devices_and_links_to_them_are_refused_unread(tmp_path: Path) -> None:
    fifo = make_fifo(tmp_path / "pipe.jpg")
    cases = {
        fifo: "FIFO",
        link(tmp_path / "to_pipe.png", "pipe.jpg"): "symbolic link to pipe.jpg, which is a FIFO",
        link(tmp_path / "zero.jpg", "/dev/zero"): "character device",
    }
    for path, fragment in cases.items():
        t = time.perf_counter()
        reason = read_in_thread(path)
        assert fragment in reason and "not a photo file" in reason, reason
        assert time.perf_counter() - t < 1.0


def test_scan_lists_a_bare_fifo_so_that_it_is_reported(tmp_path: Path) -> None:
    """A bare FIFO used to vanish from the listing without a word."""
    make_fifo(tmp_path / "pipe.jpg")
    (tmp_path / "sub").mkdir()
    assert [p.name for p in scan_images(tmp_path)] == ["pipe.jpg"]
    assert [p.name for p in scan_images(tmp_path, recursive=True)] == ["pipe.jpg"]


def test_reads_are_capped_before_any_byte_is_read(tmp_path: Path) -> None:
    huge = sparse_file(tmp_path / "huge.jpg", 8 * 2**30)  # 8 GB, no disk space, no time
    t = time.perf_counter()
    with pytest.raises(ImageReadError, match="file too large"):
        read_rgb(huge)
    assert time.perf_counter() - t < 0.5
    from engine.imageio import read_file_bytes

    small = tmp_path / "small.jpg"
    small.write_bytes(b"x" * 2000)
    with pytest.raises(ImageReadError, match="file too large"):
        read_file_bytes(small, limit=1000)
    assert read_file_bytes(small, limit=2000) == b"x" * 2000


# --- the segment pipeline ---------------------------------------------------------------------


class _Stub:
    """A stand-in model: size 32, stride 8, probability 0.75 everywhere."""

    size, stride = 32, 8

    def run(self, batch: np.ndarray) -> np.ndarray:
        return np.full((batch.shape[0], batch.shape[2], batch.shape[3]), 0.75, np.float32)

    def describe(self) -> str:
        return "stub"


def test_cancel_returns_within_a_second_with_a_stuck_reader(tmp_path: Path, monkeypatch) -> None:
    """A reader stuck in the kernel used to hold the cancel (``shutdown(wait=True)``) forever,
    and the interrupted summary said 0 written although outputs existed."""
    import engine.export.masks as masks

    folder = photo_folder(tmp_path / "in", count=6)
    stuck = threading.Event()
    real_read = masks.read_rgb

    def read(path):
        if path.name >= "photo_03":
            stuck.wait(30)  # as a read from a hung mount would
        return real_read(path)

    monkeypatch.setattr(masks, "read_rgb", read)
    cancel = threading.Event()
    out = tmp_path / "out"
    result: dict = {}

    def run() -> None:
        result["summary"] = masks.export_masks(
            _Stub(), folder, out, masks.ExportOptions(workers=2, batch=1, max_wait_s=0.05),
            cancel=cancel)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    deadline = time.monotonic() + 20
    while len(list(out.glob("photo_*.png"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    t = time.perf_counter()
    cancel.set()
    worker.join(5)
    took = time.perf_counter() - t
    stuck.set()
    assert not worker.is_alive() and took < 1.0, took
    summary = result["summary"]
    assert summary.cancelled and summary.written == 3 == len(list(out.glob("photo_*.png")))
    assert summary.abandoned_threads >= 1  # the stuck reader: the CLI ends with os._exit
    assert "cancelled: 3 written" in summary.log_path.read_text()


def test_run_log_entries_are_one_line_each(tmp_path: Path) -> None:
    from engine.export.masks import export_masks

    folder = photo_folder(tmp_path / "in", count=1)
    (folder / "two\nlines.png").write_bytes(b"not an image\nat all")
    summary = export_masks(_Stub(), folder, tmp_path / "out")
    assert summary.failed == 1
    entries = summary.log_path.read_text().splitlines()
    assert len(entries) == 3  # start, FAILED, finished
    assert "two\\nlines.png" in entries[1] and entries[1].split(" ", 1)[1].startswith("FAILED")


def test_log_that_is_a_link_is_refused_and_its_target_untouched(tmp_path: Path, capsys) -> None:
    folder = photo_folder(tmp_path / "in", count=1)
    out = tmp_path / "out"
    out.mkdir()
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("precious\n")
    link(out / "peel-segment.log", outside)
    model = contract_model(tmp_path / "m.onnx")
    code, _, err = peel(capsys, "segment", str(folder), str(out), "--model", str(model),
                        "--device", "cpu")
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("peel segment: error: ")
    assert "symbolic link" in err
    assert outside.read_text() == "precious\n"
    assert not list(out.glob("*.png"))


def test_unusable_out_dir_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    folder = photo_folder(tmp_path / "in", count=1)
    model = str(contract_model(tmp_path / "m.onnx"))
    out = tmp_path / "out"
    (out / "peel-segment.log").mkdir(parents=True)  # the log's name taken by a folder
    code, _, err = peel(capsys, "segment", str(folder), str(out), "--model", model,
                        "--device", "cpu")
    assert code == 2 and err.startswith("peel segment: error: ") and err.count("\n") == 1
    if permissions_enforced():
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        try:
            code, _, err = peel(capsys, "segment", str(folder), str(locked / "out"), "--model",
                                model, "--device", "cpu")
            assert code == 2 and "cannot write" in err
        finally:
            locked.chmod(0o755)


def test_unwritable_out_dir_is_refused_before_any_work(tmp_path: Path, monkeypatch) -> None:
    """Root ignores chmod, so the refusal of a read-only OUT_DIR is simulated at the probe."""
    import tempfile

    import engine.export.masks as masks

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(masks.ExportSetupError, match="cannot write to OUT_DIR .*Read-only"):
        masks.export_masks(_Stub(), photo_folder(tmp_path / "in", 1), tmp_path / "out")


def test_export_onnx_removes_temps_a_killed_export_left(tmp_path: Path) -> None:
    from engine.atomic import remove_stale_temps

    target = tmp_path / "segmenter.onnx"
    stale = tmp_path / ".segmenter.onnx.k3x_9a2b.onnx"
    stale.write_bytes(b"half a model")
    keep = [tmp_path / ".segmenter.onnx.notmine", tmp_path / "segmenter.pt",
            tmp_path / ".other.onnx.k3x_9a2b.onnx"]
    for path in keep:
        path.write_bytes(b"x")
    link(tmp_path / ".segmenter.onnx.abcdefgh.onnx", tmp_path / "segmenter.pt")
    assert remove_stale_temps(target) == 1
    assert not stale.exists() and all(p.exists() for p in keep)
    assert os.path.islink(tmp_path / ".segmenter.onnx.abcdefgh.onnx")


# --- training ---------------------------------------------------------------------------------


def test_grabcut_cache_key_of_a_name_that_is_not_utf8(tmp_path: Path) -> None:
    """``peel train`` died in the bootstrap on such a name (UnicodeEncodeError)."""
    import hashlib

    from engine.segmenter.grabcut_cache import ITERS, MARGIN, WORK_SIDE, cache_key

    raw = os.path.join(os.fsencode(tmp_path), b"bad\xffname.jpg")
    with open(raw, "wb") as fh:
        fh.write(b"x")
    key = cache_key(os.fsdecode(raw))
    assert len(key) == 20 and int(key, 16) >= 0 and cache_key(os.fsdecode(raw)) == key
    # Valid names keep the key they had, so existing caches stay valid.
    good = tmp_path / "fine.jpg"
    good.write_bytes(b"y")
    st = good.stat()
    old = f"{good.resolve()}|{st.st_size}|{st.st_mtime_ns}|{WORK_SIDE}|{MARGIN}|{ITERS}"
    assert cache_key(good) == hashlib.sha1(old.encode("utf-8")).hexdigest()[:20]


def test_photos_gone_before_label_refinement_are_a_warning_with_a_count(tmp_path: Path) -> None:
    import torch
    from test_segmenter_relabel import CentredDisc, _drain

    from engine.control import RunControl
    from engine.data import load_folder
    from engine.events import WarningEvent
    from engine.segmenter.relabel import refined_labels

    folder = photo_folder(tmp_path / "in", count=4, h=64, w=64)
    cache = load_folder(folder, 32)
    for path in folder.iterdir():  # the folder is emptied during training
        path.unlink()
    events, _ = _drain(refined_labels(cache, CentredDisc(), 32, torch.device("cpu"),
                                      RunControl(), "round-1-segmenter", 0))
    warnings = [e.message for e in events if isinstance(e, WarningEvent)]
    assert len(warnings) == 1 and "skipped for 4 of 4 photos" in warnings[0], warnings


# --- command line (issue #17, items 12 and 13) ------------------------------------------------


def test_evaluate_with_no_matching_prediction_exits_1(tmp_path: Path, capsys) -> None:
    """It printed "images scored 200" with metrics and exit 0."""
    gt = photo_folder(tmp_path / "gt", count=2)
    preds = tmp_path / "preds"
    preds.mkdir()
    code, out, err = peel(capsys, "evaluate", str(preds), str(gt))  # empty
    assert code == 1 and out == ""
    assert err.startswith("peel evaluate: error: no readable prediction") and err.count("\n") == 1
    (preds / "other_name.png").write_bytes((gt / "photo_00.png").read_bytes())
    code, out, err = peel(capsys, "evaluate", str(preds), str(gt))
    assert code == 1 and "no readable prediction" in err
    (preds / "photo_01.png").write_bytes((gt / "photo_01.png").read_bytes())
    code, out, err = peel(capsys, "evaluate", str(preds), str(gt))
    assert code == 0 and "images scored        2" in out


def test_a_closed_stdout_pipe_ends_quietly(tmp_path: Path) -> None:
    gt = photo_folder(tmp_path / "gt", count=40, h=16, w=16)
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli.main", "evaluate", str(gt),
                             str(gt), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=ROOT, env=ENV)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader leaves before the first line (as `| head` after its lines)
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_baseline_where_every_photo_fails_exits_1(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    make_fifo(folder / "pipe.jpg")
    (folder / "text.png").write_text("not a photo")
    code, _, err = peel(capsys, "baseline", "grabcut", str(folder), str(tmp_path / "out"),
                        "--workers", "1")
    assert code == 1
    lines = err.strip().splitlines()
    assert lines[-1] == "peel baseline: error: no mask written: all 2 photos failed"
    assert sum("pipe.jpg" in ln for ln in lines) == 1


def test_segment_reports_each_bad_file_once_and_shows_progress(tmp_path: Path,
                                                               monkeypatch, capsys) -> None:
    import engine.cli.progress as progress

    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.0)
    folder = photo_folder(tmp_path / "in", count=3)
    link(folder / "zero.jpg", "/dev/zero")
    code, _, err = peel(capsys, "segment", str(folder), str(tmp_path / "out"), "--model",
                        str(contract_model(tmp_path / "m.onnx")), "--device", "cpu")
    assert code == 1
    assert err.count("zero.jpg") == 1, err
    assert "segment: 4/4 photos" in err  # plain lines: stderr is not a terminal here


def test_first_ctrl_c_cancels_segment_within_a_second(tmp_path: Path) -> None:
    """The real signal path: a segment whose later photos are stuck in their reads gets SIGINT;
    it must end within a second with exit 130 and a summary counting the masks on disk."""
    folder = photo_folder(tmp_path / "in", count=8)
    out = tmp_path / "out"
    model = contract_model(tmp_path / "m.onnx")
    script = f"""
import sys, threading
import engine.export.masks as masks
real = masks.read_rgb
def read(path):
    if path.name >= "photo_03":
        threading.Event().wait()  # stuck for good
    return real(path)
masks.read_rgb = read
from engine.cli.main import main
sys.exit(main(["segment", {str(folder)!r}, {str(out)!r}, "--model", {str(model)!r},
               "--device", "cpu", "--workers", "2", "--batch", "1"]))
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=ENV)
    deadline = time.monotonic() + 60
    while len(list(out.glob("photo_*.png"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    t = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    try:
        stdout, stderr = proc.communicate(timeout=5)
    finally:
        proc.kill()
    assert time.perf_counter() - t < 1.5
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    written = len(list(out.glob("photo_*.png")))
    assert written == 3 and stdout.startswith(f"cancelled: {written} written"), stdout


def test_cancelled_baseline_ends_its_workers_at_once(tmp_path: Path) -> None:
    """``baseline grabcut`` waited for every running GrabCut (28 s after Ctrl-C on 300 photos)."""
    import cv2

    from engine.baselines.grabcut import grabcut_folder

    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):  # noise photos: each GrabCut takes a good fraction of a second
        cv2.imwrite(str(folder / f"p{i:02d}.png"), rng.integers(0, 256, (480, 640, 3), np.uint8))
    cancel = threading.Event()
    asked: list[float] = []

    def progress(done: int, total: int) -> None:
        if not cancel.is_set():
            cancel.set()
            asked.append(time.perf_counter())

    out = tmp_path / "out"
    result = grabcut_folder(folder, out, workers=2, progress=progress, cancel=cancel)
    took = time.perf_counter() - asked[0]
    assert result.cancelled and took < 1.0, took
    time.sleep(0.3)  # a terminated worker writes nothing more
    assert result.written == len(list(out.glob("*.png"))) < 12


def test_training_cache_leaves_reporting_bad_files_to_its_caller(tmp_path: Path, caplog) -> None:
    """``peel train`` printed each bad file twice: a WARNING log line and the trainer's event."""
    import logging

    from engine.data import load_folder

    folder = photo_folder(tmp_path / "in", count=2)
    make_fifo(folder / "pipe.jpg")
    with caplog.at_level(logging.DEBUG):
        cache = load_folder(folder, 32)
    assert [Path(b.path).name for b in cache.bad] == ["pipe.jpg"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_worker_processes_share_one_lock_for_large_decodes() -> None:
    """The per-process decode budget cannot see the other GrabCut workers; a semaphore given to
    all of them makes a pool decode one large photo at a time."""
    from engine.worker_pool import background_pool

    pool = background_pool(2)
    try:
        probe = "__import__('engine.imageio', fromlist=['_']).__dict__['_shared_large'] is not None"
        assert all(pool.map(eval, [probe] * 4))
    finally:
        pool.shutdown()
