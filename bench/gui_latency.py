"""Does the window stay responsive while the engine trains? Prints JSON.

A 10 ms heartbeat QTimer runs in the GUI thread while the real trainer runs on the demo folder
through the real window (previews, plots, thumbnails all live). Every gap between heartbeats
longer than 10 ms is time the GUI thread could not run; the worst gap is what a user would feel
as a freeze. Goal: worst gap < 50 ms.

    .venv/bin/python bench/gui_latency.py [--seconds 30] [--torch-threads N] [--folder DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--folder", help="photo folder (default: a fresh 100-image demo folder)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--torch-threads", type=int, default=0,
                        help="threads for torch in the trainer (0: the GUI default, cores - 1)")
    parser.add_argument("--no-bootstrap", action="store_true")
    parser.add_argument("--baseline-seconds", type=float, default=10.0,
                        help="first measure the idle window this long (the machine's own noise)")
    args = parser.parse_args()

    import numpy as np
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    import app.run_session as run_session
    from app.window import MainWindow
    from engine.demo import make_demo_folder

    tmp = Path(tempfile.mkdtemp(prefix="peel-gui-bench-"))
    folder = args.folder
    if folder is None:
        folder = str(tmp / "demo")
        make_demo_folder(folder, count=100, size=128, seed=3)
    if args.torch_threads:
        run_session.gui_torch_threads = lambda: args.torch_threads
    threads = run_session.gui_torch_threads()

    qapp = QApplication(sys.argv[:1])
    settings = QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(settings=settings, runs_dir=tmp / "runs")
    w.resize(1280, 800)
    w.show()
    w.open_folder(folder)
    size_index = w.training.size.findData(args.size)
    w.training.size.setCurrentIndex(size_index)
    w.training.batch.setValue(args.batch)
    w.training.by_minutes.setChecked(True)
    w.training.minutes.setValue(60)
    w.training.bootstrap.setChecked(not args.no_bootstrap)

    # Time spent in the GUI thread's own handlers, to tell our work apart from GIL waits and
    # the OS scheduler (other processes) when a gap appears.
    handler_ms: dict[str, list[float]] = {}

    def timed(obj, name: str, label: str) -> None:
        original = getattr(obj, name)

        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                handler_ms.setdefault(label, []).append((time.perf_counter() - t) * 1000)

        setattr(obj, name, wrapper)

    # The controller hands each event to every subscribed panel's on_event in this call.
    timed(w.run, "_on_event", "event dispatch")
    timed(w.preview, "_redraw", "preview redraw")
    timed(w.plots, "_redraw", "plot redraw")
    timed(w.training, "_apply_progress", "progress")

    beats: list[float] = []
    heartbeat = QTimer()
    heartbeat.setInterval(10)
    heartbeat.timeout.connect(lambda: beats.append(time.perf_counter()))

    def gap_stats(stamps: list[float]) -> dict:
        gaps = np.diff(np.array(stamps)) * 1000.0
        if not gaps.size:
            return {}
        return {"worst_gap_ms": round(float(gaps.max()), 1),
                "p99_gap_ms": round(float(np.percentile(gaps, 99)), 1),
                "mean_gap_ms": round(float(gaps.mean()), 2),
                "gaps_over_50ms": int((gaps > 50).sum())}

    heartbeat.start()
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < args.baseline_seconds:
        qapp.processEvents()
        time.sleep(0.001)
    baseline = gap_stats(beats)
    beats.clear()

    started = time.perf_counter()
    w.training.start_button.click()
    while time.perf_counter() - started < args.seconds:
        qapp.processEvents()
        time.sleep(0.001)
        if w.session is None:
            break  # the run ended early (error): report what we have
    heartbeat.stop()
    t_stop = time.perf_counter()
    steps = w.latest_step
    if w.session is not None:
        w.stop_training()
        while w.session is not None:
            qapp.processEvents()
            time.sleep(0.005)
    stop_s = time.perf_counter() - t_stop
    gaps = np.diff(np.array(beats)) * 1000.0
    top = np.argsort(gaps)[::-1][:5]
    load = os.getloadavg()
    result = {
        "bench": "gui_latency",
        "seconds": round(beats[-1] - beats[0], 2) if beats else 0.0,
        "heartbeats": len(beats),
        **gap_stats(beats),
        "goal_worst_gap_ms": 50,
        "worst_gaps_at_s": [[round(beats[i] - started, 2), round(float(gaps[i]), 1)] for i in top],
        "idle_window_baseline": {"seconds": args.baseline_seconds, **baseline},
        "gui_handler_max_ms": {k: round(max(v), 1) for k, v in handler_ms.items()},
        "gui_handler_total_ms": {k: round(sum(v), 1) for k, v in handler_ms.items()},
        "load_average_1m": round(load[0], 2),
        "training_steps": steps,
        "previews_received": len(w.preview.history),
        "preview_redraws": w.preview.redraws,
        "plot_redraws": w.plots.redraws,
        "stop_to_joined_s": round(stop_s, 2),
        "errors": w.log.texts("error"),
        "torch_threads": threads,
        "cpu_count": os.cpu_count(),
        "size": args.size,
        "batch": args.batch,
        "bootstrap": not args.no_bootstrap,
        "device": w.device_label.text(),
        "platform": os.environ.get("QT_QPA_PLATFORM"),
        "python": platform.python_version(),
    }
    print(json.dumps(result, indent=2))
    w.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
