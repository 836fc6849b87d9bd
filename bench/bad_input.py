"""Issue #9: every consumer on the generated bad-input corpus, plus a folder of 50,000 tiny files.

Runs the corpus (tests/reliability/corpus.py) through training's loader, ``peel segment``'s
export, a few training steps and the GUI folder panel, and prints one JSON object:
inputs tried, good files processed, bad files reported (and whether each matches the manifest),
crashes survived (a stage raising counts as a crash), input files modified or lost (must be 0),
and image-named files a stage neither processed nor reported ("unaccounted", must be 0).

    .venv/bin/python bench/bad_input.py [--tiny 50000] [--no-gui] [--train-steps 4]

Issue #15 (``--hostile``): every hostile case through the real commands (``peel segment
--workers 2``, ``baseline grabcut --workers 2``, ``evaluate``, ``train``, ``export-onnx``), each in
its own process: exit code, the line the command printed about the case, peak RSS of that
process (``wait4``; worker processes are separate), wall time, and whether it hung (killed after
``--timeout``) or printed a traceback. Ctrl-C cases send SIGINT mid-run and time the exit.

    .venv/bin/python bench/bad_input.py --hostile
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "reliability"),
                str(ROOT / "bench")]

import torch  # noqa: E402
from corpus import snapshot, write_corpus, write_many_tiny  # noqa: E402

from engine.data import load_folder  # noqa: E402
from engine.imageio import scan_images  # noqa: E402


def compare(corpus, consumer: str, processed: set[str], reported: dict[str, str]) -> dict:
    """Counts for one stage, checked against the corpus manifest."""
    good, bad = corpus.good(consumer), corpus.bad(consumer)
    wrong_reason = [n for n, frag in bad.items() if n in reported and frag not in reported[n]]
    return {
        "tried": len(corpus.entries),
        "good_processed": len(processed & good),
        "good_expected": len(good),
        "reported": len(reported),
        "reported_expected": len(bad),
        "good_files_reported": sorted(set(reported) & good),
        "bad_files_processed": sorted(processed & set(bad)),
        "wrong_reason": wrong_reason,
        "unaccounted": sorted(corpus.names() - processed - set(reported)),
    }


def stage(name: str, results: dict, fn) -> None:
    t = time.perf_counter()
    try:
        results[name] = fn()
        results[name]["crashed"] = False
    except Exception as exc:  # the point of the benchmark: a crash is recorded, not fatal
        results[name] = {"crashed": True, "error": f"{type(exc).__name__}: {exc}",
                         "traceback": traceback.format_exc()}
    results[name]["seconds"] = round(time.perf_counter() - t, 2)


def run_load(corpus) -> dict:
    cache = load_folder(corpus.root, size=32)
    return compare(corpus, "load", {p.name for p in cache.paths},
                   {Path(b.path).name: b.reason for b in cache.bad})


def run_segment(corpus, work: Path) -> dict:
    from export_helpers import make_tiny_segmenter

    from engine.export.masks import ExportOptions, export_masks
    from engine.export.onnx import export_onnx

    run_dir = work / "model"
    run_dir.mkdir()
    make_tiny_segmenter(run_dir / "segmenter.pt")
    export_onnx(run_dir)
    out = work / "masks"
    summary = export_masks(run_dir / "segmenter.onnx", corpus.root, out,
                           ExportOptions(workers=2, device="cpu"))
    written = {p.stem for p in out.glob("*.png")}
    processed = {e.name for e in corpus.entries if Path(e.name).stem in written}
    res = compare(corpus, "segment", processed,
                  {Path(b.path).name: b.reason for b in summary.failures})
    res["written"] = summary.written
    return res


def run_train(corpus, work: Path, steps: int) -> dict:
    from train_helpers import run_all, tiny_config

    from engine.events import Failed, Finished, WarningEvent

    events = run_all(tiny_config(corpus.root, work / "run", steps=steps))
    last = events[-1]
    if isinstance(last, Failed):
        raise RuntimeError(f"training failed: {last.error}")
    warned = [e.message for e in events if isinstance(e, WarningEvent) and e.kind == "bad-file"]
    return {"finished": isinstance(last, Finished), "steps": getattr(last, "step", None),
            "bad_file_warnings": len(warned)}


def run_gui(corpus, many: Path | None) -> dict:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.panels.folder import FolderPanel

    app = QApplication.instance() or QApplication([])
    out: dict = {}

    def wait_until(cond, timeout_s: float) -> float:
        t = time.perf_counter()
        while not cond() and time.perf_counter() - t < timeout_s:
            app.processEvents()
            time.sleep(0.002)
        return time.perf_counter() - t

    panel = FolderPanel()
    panel.resize(900, 600)
    panel.show()
    panel.show_folder(str(corpus.root))
    wait_until(lambda: "checking" not in panel.count_label.text(), 60)
    bad = {Path(p).name: r for p, r in panel.model.bad_files().items()}
    rows = {Path(panel.model.path(r)).name for r in range(panel.model.rowCount())}
    out["corpus"] = compare(corpus, "thumb", rows - set(bad), bad)

    if many is not None:
        ticks: list[float] = []
        timer = QTimer()
        timer.setInterval(10)
        timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
        # The heartbeat runs from before the call: a big folder is listed in the background, so
        # the listing's cost shows up as a gap here, not as a slow return.
        ticks.append(time.perf_counter())
        timer.start()
        t = time.perf_counter()
        panel.show_folder(str(many))
        show_s = time.perf_counter() - t
        wait_until(lambda: False, 3.0)
        timer.stop()
        gaps = sorted(b - a for a, b in zip(ticks, ticks[1:], strict=False))
        checked_3s = panel.model._checked
        listed_s = wait_until(lambda: not panel.scanning, 600)
        n = panel.image_count
        all_s = 3.0 + listed_s + wait_until(lambda: panel.model._checked >= n, 600)
        out["tiny_folder"] = {
            "files": n, "show_folder_s": round(show_s, 3),
            "heartbeat_max_gap_s": round(gaps[-1], 3),
            "heartbeat_p99_gap_s": round(gaps[int(0.99 * (len(gaps) - 1))], 3),
            "heartbeat_ticks_in_3s": len(gaps), "thumbnails_checked_in_3s": checked_3s,
            "all_checked_s": round(all_s, 1), "unreadable": len(panel.model.bad_files()),
        }
    panel.shutdown()
    panel.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", type=int, default=50_000, help="files in the tiny-file folder (0: skip)")
    ap.add_argument("--train-steps", type=int, default=4)
    ap.add_argument("--no-gui", action="store_true")
    ap.add_argument("--hostile", action="store_true", help="only the issue #15 table (see above)")
    ap.add_argument("--timeout", type=float, default=120, help="--hostile: a run is hung after this")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.hostile:
        from hostile_bench import run_hostile

        print(json.dumps(run_hostile(args.timeout), indent=1))
        return 0

    results: dict = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                 "load_avg_start": [round(x, 2) for x in os.getloadavg()],
                                 "euid": os.geteuid()}}
    with tempfile.TemporaryDirectory(prefix="peel-bad-input-") as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        corpus = write_corpus(work / "bad input")
        results["corpus"] = {"entries": len(corpus.entries),
                             "good_for_training": len(corpus.good("load")),
                             "not_made": corpus.not_made,
                             "write_s": round(time.perf_counter() - t, 2)}
        before = snapshot(corpus.root)

        stage("load", results, lambda: run_load(corpus))
        stage("segment", results, lambda: run_segment(corpus, work))
        stage("train", results, lambda: run_train(corpus, work, args.train_steps))

        many = None
        if args.tiny:
            many = work / "many"
            t = time.perf_counter()
            write_many_tiny(many, args.tiny)
            write_s = time.perf_counter() - t
            scans = []
            for _ in range(3):
                t = time.perf_counter()
                found = scan_images(many)
                scans.append(time.perf_counter() - t)
            t = time.perf_counter()
            cache = load_folder(many, size=16, workers=2)
            results["tiny_folder"] = {
                "files": args.tiny, "write_s": round(write_s, 1), "scanned": len(found),
                "scan_s_best_of_3": round(min(scans), 3),
                "load_folder_s": round(time.perf_counter() - t, 1), "loaded": len(cache),
            }
        if not args.no_gui:
            stage("gui", results, lambda: run_gui(corpus, many))

        after = snapshot(corpus.root)
        results["inputs"] = {
            "entries": len(before),
            "modified": sorted(k for k in before if k in after and after[k] != before[k]),
            "lost": sorted(set(before) - set(after)),
            "added": sorted(set(after) - set(before)),
        }
    stages = [s for s in ("load", "segment", "train", "gui") if s in results]
    results["crashes"] = sum(bool(results[s].get("crashed")) for s in stages)
    results["machine"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(results, indent=1))  # ASCII: one corpus name is not valid UTF-8
    return 0


if __name__ == "__main__":
    sys.exit(main())
