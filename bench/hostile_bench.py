"""Issue #15's table: every hostile case through the real ``peel`` commands, one process each.

Run through ``bench/bad_input.py --hostile`` (see its docstring). Per case: the command, exit
code, the line it printed about the case, peak RSS of the ``peel`` process (``os.wait4``: GrabCut
worker processes are separate processes and not included), wall time, hung (still running at the
timeout), traceback (any ``Traceback`` in the output).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from corpus import flat_jpeg, flat_png_1bit
from hostile import (
    contract_model,
    link,
    make_fifo,
    photo_folder,
    png_header_only,
    sparse_file,
    tiff_bomb,
    tiff_bytes,
)

ROOT = Path(__file__).resolve().parents[1]
PEEL = [sys.executable, "-m", "engine.cli.main"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8:backslashreplace"}


def run_measured(cmd: list[str], timeout: float, sigint_after: float | None = None,
                 on_start=None) -> dict:
    """Run ``cmd``; exit code, wall time, peak RSS (MB) from ``wait4``, output, hung.

    ``sigint_after``: send SIGINT after that many seconds and record how long the exit took.
    ``on_start(proc, t0)`` may act while it runs (returns when done)."""
    out_f = tempfile.TemporaryFile()
    err_f = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=out_f, stderr=err_f, cwd=ROOT, env=ENV)
    if on_start is not None:
        on_start(proc, t0)
    sent = None
    hung = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        now = time.perf_counter() - t0
        if sigint_after is not None and sent is None and now >= sigint_after:
            proc.send_signal(signal.SIGINT)
            sent = time.perf_counter()
        if now > timeout:
            hung = True
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.01)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    out_f.seek(0)
    err_f.seek(0)
    stdout = out_f.read().decode("utf-8", "backslashreplace")
    stderr = err_f.read().decode("utf-8", "backslashreplace")
    res = {
        "exit": proc.returncode, "seconds": round(wall, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "hung": hung,
        "traceback": "Traceback" in stdout + stderr,
        "stdout": stdout, "stderr": stderr,
    }
    if sent is not None:
        res["exit_after_sigint_s"] = round(time.perf_counter() - sent if hung else
                                           t0 + wall - sent, 2)
    return res


def about(res: dict, needle: str) -> str:
    """The first output line naming ``needle`` (else the last line of stderr, else stdout)."""
    lines = (res["stderr"] + "\n" + res["stdout"]).splitlines()
    for line in lines:
        if needle and needle in line and not line.startswith(("INFO ", "DEBUG ")):
            return line.strip()[:200]
    tail = [ln for ln in res["stderr"].splitlines() if ln.strip() and not ln.startswith("INFO ")]
    if tail:
        return tail[-1].strip()[:200]
    out = res["stdout"].strip().splitlines()
    return out[-1][:200] if out else ""


def row(case: str, command: str, res: dict, needle: str, **extra) -> dict:
    keep = {k: v for k, v in res.items() if k not in ("stdout", "stderr")}
    return {"case": case, "command": command, **keep, "reported": about(res, needle), **extra}


def gif_header(w: int, h: int) -> bytes:
    return b"GIF89a" + w.to_bytes(2, "little") + h.to_bytes(2, "little") + b"\x00\x00\x00" + b";"


def bmp_header(w: int, h: int) -> bytes:
    import struct

    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 0, 0, 0, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40, 0, 0, 54) + info


def webp_header(w: int, h: int) -> bytes:
    payload = b"\x00" * 4 + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
    chunk = b"VP8X" + len(payload).to_bytes(4, "little") + payload
    return b"RIFF" + (4 + len(chunk)).to_bytes(4, "little") + b"WEBP" + chunk


def file_cases(work: Path) -> dict[str, tuple[str, callable]]:
    """name -> (entry name in the folder, maker(folder))."""
    bomb = work / "bomb.tif"
    if not bomb.exists():
        bomb.write_bytes(tiff_bomb(20_000, 20_000))
    return {
        "FIFO": ("pipe.jpg", lambda f: make_fifo(f / "pipe.jpg")),
        "symlink to a FIFO": ("to_pipe.jpg", lambda f: (make_fifo(f / ".pipe"),
                                                        link(f / "to_pipe.jpg", ".pipe"))),
        "symlink to /dev/zero": ("zero.jpg", lambda f: link(f / "zero.jpg", "/dev/zero")),
        "8 GB (sparse) file named .jpg": ("big.jpg", lambda f: sparse_file(f / "big.jpg", 8 << 30)),
        "20000x20000 deflate TIFF bomb (0.4 MB)": (
            "bomb.tif", lambda f: shutil.copy(bomb, f / "bomb.tif")),
        "BigTIFF big-endian header 60000x60000": (
            "big_be.tif", lambda f: (f / "big_be.tif").write_bytes(
                tiff_bytes(60_000, 60_000, bigtiff=True, big_endian=True))),
        "20000x15000 1-bit PNG": ("huge.png", lambda f: (f / "huge.png").write_bytes(
            flat_png_1bit(20_000, 15_000))),
        "16-bit PNG header 12000x12000 (864 MB decoded)": (
            "deep.png", lambda f: (f / "deep.png").write_bytes(png_header_only(12_000, 12_000, 16))),
        "20000x15000 JPEG": ("huge.jpg", lambda f: (f / "huge.jpg").write_bytes(
            flat_jpeg(20_000, 15_000))),
        "GIF header 65535x65535": ("bomb.gif", lambda f: (f / "bomb.gif").write_bytes(
            gif_header(65_535, 65_535))),
        "BMP header 30000x30000": ("bomb.bmp", lambda f: (f / "bomb.bmp").write_bytes(
            bmp_header(30_000, 30_000))),
        "WebP header 16384x16384": ("bomb.webp", lambda f: (f / "bomb.webp").write_bytes(
            webp_header(16_384, 16_384))),
        "PPM 60000x60000 named .jpg": ("ppm.jpg", lambda f: (f / "ppm.jpg").write_bytes(
            b"P6\n60000 60000\n255\n" + bytes(64))),
        "name with a newline": ("new\nline.png", lambda f: (f / "new\nline.png").write_bytes(
            b"junk\nmore junk")),
    }


def run_hostile(timeout: float) -> dict:
    results: dict = {"machine": {"cpus": os.cpu_count(),
                                 "load_avg_start": [round(x, 2) for x in os.getloadavg()]},
                     "rows": []}
    rows = results["rows"]
    with tempfile.TemporaryDirectory(prefix="peel-hostile-") as tmp:
        work = Path(tmp)
        model = contract_model(work / "model.onnx")
        good = photo_folder(work / "good", count=3)

        # Files in a photo folder: segment, baseline, evaluate (the case as ground truth).
        for case, (name, make) in file_cases(work).items():
            folder = work / f"case-{len(rows)}"
            shutil.copytree(good, folder)
            make(folder)
            for label, cmd in (
                ("segment --workers 2", ["segment", "--model", str(model), str(folder),
                                         str(folder.with_suffix(".seg")), "--workers", "2",
                                         "--device", "cpu"]),
                ("baseline grabcut --workers 2", ["baseline", "grabcut", str(folder),
                                                  str(folder.with_suffix(".gc")), "--workers", "2"]),
                ("evaluate (case in GT_DIR)", ["evaluate", str(good), str(folder)]),
            ):
                res = run_measured(PEEL + cmd, timeout)
                rows.append(row(case, label, res, name.split("\n")[0]))
            print(f"{case}: done", file=sys.stderr)

        # The headline folder.
        folder = work / "headline"
        shutil.copytree(good, folder)
        shutil.copy(work / "bomb.tif", folder / "bomb.tif")
        link(folder / "zero.jpg", "/dev/zero")
        res = run_measured(PEEL + ["segment", "--model", str(model), str(folder),
                                   str(work / "headline.out"), "--workers", "2",
                                   "--device", "cpu"], timeout)
        rows.append(row("20000x20000 TIFF bomb + /dev/zero link + 3 photos", "segment --workers 2",
                        res, "written"))

        # Training survives everything above, plus a name that is not valid UTF-8.
        folder = work / "train"
        photo_folder(folder, count=16, h=64, w=64)
        with open(os.path.join(os.fsencode(folder), b"bad\xffname.png"), "wb") as fh:
            fh.write((folder / "photo_00.png").read_bytes())
        for _case, (_name, make) in file_cases(work).items():
            with contextlib.suppress(FileExistsError):
                make(folder)
        res = run_measured(PEEL + ["train", str(folder), "--out", str(work / "run"),
                                   "--minutes", "0.3", "--size", "32", "--device", "cpu",
                                   "--threads", "1"], max(timeout, 300))
        rows.append(row("all file cases + a non-UTF-8 name, 17 photos", "train --minutes 0.3",
                        res, "finished"))

        rows.extend(model_rows(work, good, timeout))
        rows.extend(output_rows(work, good, model, timeout))
        rows.extend(interrupt_rows(work, timeout))
    results["machine"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    results["all_ok"] = not any(r["hung"] or r["traceback"] for r in rows)
    return results


def model_rows(work: Path, good: Path, timeout: float) -> list[dict]:
    out = []
    cases = {
        "peel.size=2000": {"props": {"peel.size": "2000"}},
        "peel.size=60000": {"props": {"peel.size": "60000"}},
        "peel.size=0": {"props": {"peel.size": "0"}},
        "peel.size=-8": {"props": {"peel.size": "-8"}},
        "peel.stride=-16": {"props": {"peel.stride": "-16"}},
        "peel.stride=0": {"props": {"peel.stride": "0"}},
        "peel.stride=1 (valid: any size)": {"props": {"peel.stride": "1"}},
        "output NaN": {"output": "nan"},
        "output half-size": {"output": "half"},
        "output rank 3": {"output": "rank3"},
        "output logits (no sigmoid)": {"output": "logits"},
        "IR version 99": {"ir_version": 99},
        "input not named image": {"input_name": "pixels"},
    }
    for case, kwargs in cases.items():
        model = contract_model(work / f"m{len(out)}.onnx", **kwargs)
        res = run_measured(PEEL + ["segment", "--model", str(model), str(good),
                                   str(work / f"m{len(out)}.out"), "--device", "cpu"], timeout)
        out.append(row(f"ONNX: {case}", "segment", res, "NaN" if case == "output NaN" else "error"))
    return out


def output_rows(work: Path, good: Path, model: Path, timeout: float) -> list[dict]:
    out = []

    def seg(dest: Path) -> dict:
        return run_measured(PEEL + ["segment", "--model", str(model), str(good), str(dest),
                                    "--device", "cpu"], timeout)

    dest = work / "log-folder"
    (dest / "peel-segment.log").mkdir(parents=True)
    out.append(row("OUT_DIR/peel-segment.log is a folder", "segment", seg(dest), "error"))

    dest = work / "log-link"
    dest.mkdir()
    outside = work / "outside.txt"
    outside.write_text("precious\n")
    link(dest / "peel-segment.log", outside)
    res = seg(dest)
    out.append(row("OUT_DIR/peel-segment.log links outside", "segment", res, "error",
                   outside_untouched=outside.read_text() == "precious\n"))

    dest = work / "immutable"
    dest.mkdir()
    if subprocess.run(["chattr", "+i", str(dest)], capture_output=True).returncode == 0:
        try:
            out.append(row("immutable OUT_DIR (chattr +i)", "segment", seg(dest), "error"))
        finally:
            subprocess.run(["chattr", "-i", str(dest)], capture_output=True)
    dest = work / "ro-mount"
    dest.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "none", str(dest)],
                      capture_output=True).returncode == 0:
        try:
            out.append(row("read-only mount as OUT_DIR", "segment", seg(dest), "error"))
        finally:
            subprocess.run(["umount", str(dest)], capture_output=True)

    # kill -9 during export-onnx, then the same command again.
    from export_helpers import make_tiny_segmenter

    run_dir = work / "export"
    run_dir.mkdir()
    make_tiny_segmenter(run_dir / "segmenter.pt")

    def kill_when_temp_appears(proc, t0) -> None:
        while proc.poll() is None and time.perf_counter() - t0 < timeout:
            if any(p.name.startswith(".segmenter.onnx.") for p in run_dir.iterdir()):
                proc.kill()
                return
            time.sleep(0.005)

    first = run_measured(PEEL + ["export-onnx", str(run_dir)], timeout,
                         on_start=kill_when_temp_appears)
    left = sorted(p.name for p in run_dir.iterdir() if p.name.startswith("."))
    second = run_measured(PEEL + ["export-onnx", str(run_dir)], timeout)
    after = sorted(p.name for p in run_dir.iterdir() if p.name.startswith("."))
    out.append(row("kill -9 mid export-onnx, then rerun", "export-onnx", second, "wrote",
                   killed_exit=first["exit"], temps_after_kill=left, temps_after_rerun=after))
    return out


def interrupt_rows(work: Path, timeout: float) -> list[dict]:
    """Ctrl-C (SIGINT) mid-run: how long until the command has exited, and what it said."""
    import cv2
    import numpy as np

    folder = work / "many"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(300):
        img = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"p{i:03d}.jpg"), img)
    model = contract_model(work / "int.onnx")
    out = []
    res = run_measured(PEEL + ["segment", "--model", str(model), str(folder), str(work / "int.seg"),
                               "--refine", "--device", "cpu"], timeout, sigint_after=10.0)
    written = len(list((work / "int.seg").glob("*.png")))
    out.append(row("Ctrl-C mid-run (300 photos, --refine)", "segment", res, "written",
                   masks_on_disk=written))
    res = run_measured(PEEL + ["baseline", "grabcut", str(folder), str(work / "int.gc")],
                       timeout, sigint_after=4.0)
    out.append(row("Ctrl-C mid-run (300 photos)", "baseline grabcut", res, "interrupted",
                   masks_on_disk=len(list((work / "int.gc").glob("*.png")))))
    res = run_measured(PEEL + ["evaluate", str(folder), str(folder)], timeout, sigint_after=2.0)
    out.append(row("Ctrl-C mid-run (300 photos as masks)", "evaluate", res, "interrupted"))
    return out
