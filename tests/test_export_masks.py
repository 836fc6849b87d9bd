"""Batch mask export: right files, right sizes and orientation, resumable, shardable, honest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from export_helpers import exported_run, shapes_photo

from engine.export.jobs import plan_jobs
from engine.export.masks import (
    LOG_NAME,
    ExportOptions,
    ExportProgress,
    ExportSetupError,
    export_masks,
)
from engine.imageio import read_rgb

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return exported_run(tmp_path_factory) / "segmenter.onnx"


@pytest.fixture(scope="module")
def session(model_path: Path):
    from engine.export.sessions import SegmenterSession

    return SegmenterSession(model_path, device="cpu")


def write_photo(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(path.suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    path.write_bytes(buf.tobytes())


def photo_folder(root: Path, count: int, sizes=((48, 80), (64, 64), (70, 50))) -> list[Path]:
    rng = np.random.default_rng(count)
    paths = []
    for i in range(count):
        h, w = sizes[i % len(sizes)]
        path = root / f"photo_{i:03d}.png"
        write_photo(path, shapes_photo(h, w, rng))
        paths.append(path)
    return paths


def outputs(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*.png"))
        if not p.name.startswith(".")
    }


def load_png(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return img


def test_formats_give_photo_sized_outputs_of_the_right_kind(tmp_path: Path, session) -> None:
    src = tmp_path / "in"
    sizes = [(333, 517), (97, 61), (64, 64)]
    photos = {}
    for i, (h, w) in enumerate(sizes):
        photos[f"p{i}"] = shapes_photo(h, w, np.random.default_rng(i))
        write_photo(src / f"p{i}.png", photos[f"p{i}"])
    results = {}
    for fmt in ("mask", "soft", "cutout"):
        out = tmp_path / fmt
        summary = export_masks(session, src, out, ExportOptions(format=fmt, threshold=0.6))
        assert (summary.written, summary.failed, summary.skipped) == (3, 0, 0)
        results[fmt] = {name: load_png(out / f"{name}.png") for name in photos}
    for name, rgb in photos.items():
        expected = session.predict_soft([rgb])[0]
        mask, soft, cutout = (results[f][name] for f in ("mask", "soft", "cutout"))
        assert mask.shape == soft.shape == rgb.shape[:2] and mask.dtype == soft.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255}
        assert np.array_equal(mask, np.where(expected >= 0.6, 255, 0).astype(np.uint8))
        assert np.abs(soft.astype(int) - np.rint(expected * 255).astype(int)).max() <= 1
        assert len(np.unique(soft)) > 10, "soft output must keep intermediate probabilities"
        assert cutout.shape == (*rgb.shape[:2], 4) and cutout.dtype == np.uint8
        assert np.array_equal(cv2.cvtColor(cutout[:, :, :3], cv2.COLOR_BGR2RGB), rgb)
        assert np.array_equal(cutout[:, :, 3], mask)


def test_exif_rotated_photo_gives_mask_aligned_with_display(tmp_path: Path, session) -> None:
    from PIL import Image

    stored = np.zeros((40, 90, 3), np.uint8)  # wide as stored; orientation 6 displays it tall
    stored[:, :30] = (250, 20, 20)
    stored[:, 30:] = shapes_photo(40, 60)
    exif = Image.Exif()
    exif[0x0112] = 6
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(stored).save(src / "rotated.jpg", quality=95, exif=exif)
    displayed = read_rgb(src / "rotated.jpg")
    assert displayed.shape == (90, 40, 3)
    for fmt in ("mask", "cutout"):
        summary = export_masks(session, src, tmp_path / fmt, ExportOptions(format=fmt))
        assert summary.written == 1
    mask = load_png(tmp_path / "mask" / "rotated.png")
    cutout = load_png(tmp_path / "cutout" / "rotated.png")
    assert mask.shape == (90, 40) and cutout.shape == (90, 40, 4)
    assert np.array_equal(cv2.cvtColor(cutout[:, :, :3], cv2.COLOR_BGR2RGB), displayed)
    expected = session.predict_soft([displayed])[0]
    assert np.array_equal(mask, np.where(expected >= 0.5, 255, 0).astype(np.uint8))


def test_bad_files_are_reported_logged_and_skipped(tmp_path: Path, session) -> None:
    src = tmp_path / "in"
    good = photo_folder(src, 4)
    (src / "garbage.jpg").write_bytes(b"this is not a photo")
    jpeg = cv2.imencode(".jpg", np.full((32, 32, 3), 128, np.uint8))[1].tobytes()
    (src / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    write_photo(src / "photo_000.jpg", shapes_photo(30, 30))  # clashes with photo_000.png
    out = tmp_path / "out"
    summary = export_masks(session, src, out, ExportOptions())
    assert (summary.total, summary.written, summary.failed) == (7, 3, 4)
    reasons = {Path(b.path).name: b.reason for b in summary.failures}
    assert "not a readable image" in reasons["garbage.jpg"]
    assert "truncated" in reasons["truncated.jpg"]
    assert "name clash" in reasons["photo_000.jpg"] and "name clash" in reasons["photo_000.png"]
    assert sorted(outputs(out)) == [p.name for p in good[1:]]
    log_text = (out / LOG_NAME).read_text()
    for name in ("garbage.jpg", "truncated.jpg", "photo_000.jpg"):
        assert f"FAILED {src / name}" in log_text
    assert "3 written" in log_text


def test_cancelled_run_resumes_to_the_same_bytes_as_a_clean_run(tmp_path: Path, session) -> None:
    src = tmp_path / "in"
    photo_folder(src, 24)
    options = ExportOptions(format="soft", batch=4, workers=2)
    clean = export_masks(session, src, tmp_path / "clean", options)
    assert clean.written == 24

    cancel = threading.Event()
    seen: list[ExportProgress] = []

    def progress(p: ExportProgress) -> None:
        seen.append(p)
        if p.written >= 5:
            cancel.set()

    out = tmp_path / "resumed"
    first = export_masks(session, src, out, options, progress, cancel)
    assert first.cancelled and 5 <= first.written < 24
    assert len(outputs(out)) == first.written, "no partial or extra files after a cancel"
    assert [p.processed for p in seen] == sorted(p.processed for p in seen)

    missing = sorted({f"photo_{i:03d}.png" for i in range(24)} - set(outputs(out)))[0]
    leftover = out / f".{missing}.k3j_x9.png"  # what a kill during a write leaves
    leftover.write_bytes(b"half a png")
    unrelated = out / ".notes.txt"
    unrelated.write_text("a user's hidden file")
    second = export_masks(session, src, out, options)
    assert not leftover.exists() and unrelated.exists()
    assert not second.cancelled
    assert (second.skipped, second.written) == (first.written, 24 - first.written)
    assert outputs(out) == outputs(tmp_path / "clean")

    again = export_masks(session, src, out, ExportOptions(format="soft", overwrite=True))
    assert (again.written, again.skipped) == (24, 0)


@pytest.mark.slow
def test_killed_cli_run_resumes_to_the_same_bytes(tmp_path: Path, model_path: Path, session) -> None:
    src = tmp_path / "in"
    photo_folder(src, 60, sizes=((240, 320), (320, 240)))
    export_masks(session, src, tmp_path / "clean", ExportOptions())
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "engine.cli", "segment", "--model", str(model_path),
           str(src), str(out), "--batch", "1", "--workers", "1"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(outputs(out)) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_at_kill = len(outputs(out))
    assert 3 <= done_at_kill < 60, "the run should have been killed part-way"
    from engine.cli.main import main

    assert main(["segment", "--model", str(model_path), str(src), str(out)]) == 0
    assert outputs(out) == outputs(tmp_path / "clean")


def test_shards_cover_the_folder_once_and_stay_put(tmp_path: Path, session) -> None:
    src = tmp_path / "in"
    for i in range(40):
        (src / ("sub" if i % 3 else "")).mkdir(parents=True, exist_ok=True)
        (src / ("sub" if i % 3 else "") / f"img_{i:03d}.jpg").write_bytes(b"")
    out = tmp_path / "out"
    everything = {j.src for j in plan_jobs(src, out, True, None)[0]}
    parts = [{j.src for j in plan_jobs(src, out, True, (i, 3))[0]} for i in (1, 2, 3)]
    assert sum(len(p) for p in parts) == len(everything) == 40
    assert set().union(*parts) == everything
    assert all(len(p) >= 5 for p in parts), "a stable hash should spread 40 names over 3 shards"
    for i in range(40, 60):
        (src / f"img_{i:03d}.jpg").write_bytes(b"")
    grown = [{j.src for j in plan_jobs(src, out, True, (i, 3))[0]} for i in (1, 2, 3)]
    assert all(old <= new for old, new in zip(parts, grown, strict=True)), "no photo moves"

    photos = tmp_path / "photos"
    photo_folder(photos, 9)
    for i in (1, 2):
        export_masks(session, photos, tmp_path / "sharded", ExportOptions(shard=(i, 2)))
    assert sorted(outputs(tmp_path / "sharded")) == sorted(p.stem + ".png" for p in photos.iterdir())


def test_recursive_mirrors_sub_folders_and_folders_are_checked(tmp_path: Path, session) -> None:
    src = tmp_path / "in"
    write_photo(src / "a.jpg", shapes_photo(40, 50))
    write_photo(src / "deep" / "er" / "b.png", shapes_photo(50, 40))
    out = tmp_path / "out"
    summary = export_masks(session, src, out, ExportOptions(recursive=True))
    assert summary.written == 2
    assert sorted(outputs(out)) == ["a.png", "deep/er/b.png"]
    flat = export_masks(session, src, tmp_path / "flat", ExportOptions())
    assert flat.written == 1
    with pytest.raises(ExportSetupError, match="must differ"):
        export_masks(session, src, src, ExportOptions())
    with pytest.raises(ExportSetupError, match="inside IN_DIR"):
        export_masks(session, src, src / "masks", ExportOptions(recursive=True))
    assert sorted(p.name for p in src.rglob("*") if p.is_file()) == ["a.jpg", "b.png"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportSetupError, match="no photos"):
        export_masks(session, tmp_path / "empty", tmp_path / "o3", ExportOptions())


def test_segment_cli_summary_and_exit_code(tmp_path: Path, model_path: Path, capsys) -> None:
    from engine.cli.main import main

    src = tmp_path / "in"
    photo_folder(src, 3)
    (src / "broken.png").write_bytes(b"\x89PNG nope")
    code = main(["segment", "--model", str(model_path), str(src), str(tmp_path / "out"),
                 "--format", "cutout", "--device", "cpu", "--shard", "1/1"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1
    assert "3 written, 0 skipped (already done), 1 failed of 4 photos" in captured.out
    assert "CPUExecutionProvider" in captured.out
    assert "broken.png" in captured.err
    assert main(["segment", "--model", str(model_path), str(src), str(tmp_path / "o2"),
                 "--shard", "3/2"]) == 2  # fmt: skip


def test_refine_snaps_the_mask_with_grabcut_from_the_net_mask(tmp_path: Path, session) -> None:
    from engine.segmenter.refine import grabcut_refine

    src = tmp_path / "in"
    rgb = shapes_photo(120, 90, np.random.default_rng(5))
    write_photo(src / "a.png", rgb)
    summary = export_masks(session, src, tmp_path / "out", ExportOptions(refine=True))
    assert (summary.written, summary.failed) == (1, 0)
    got = load_png(tmp_path / "out" / "a.png")
    start = (session.predict_soft([rgb])[0] >= 0.5).astype(np.float32)
    assert got.shape == rgb.shape[:2] and set(np.unique(got)) <= {0, 255}
    assert np.array_equal(got, grabcut_refine(rgb, start))


def test_a_model_that_is_not_an_onnx_file_says_what_to_give(model_path: Path, tmp_path: Path) -> None:
    """A run folder and a .pt file were "no such model file" or a protobuf parse error."""
    from engine.export.sessions import ModelLoadError, SegmenterSession

    run = model_path.parent
    with pytest.raises(ModelLoadError, match=f"is a folder.*give {model_path}"):
        SegmenterSession(run, device="cpu")
    (tmp_path / "untrained run").mkdir()
    with pytest.raises(ModelLoadError, match="is a folder.*peel export-onnx"):
        SegmenterSession(tmp_path / "untrained run", device="cpu")
    with pytest.raises(ModelLoadError, match=r"torch segmenter.*peel export-onnx .*segmenter\.pt"):
        SegmenterSession(run / "segmenter.pt", device="cpu")
    with pytest.raises(ModelLoadError, match="not a regular file"):
        SegmenterSession(Path(os.devnull), device="cpu")
