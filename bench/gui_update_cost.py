"""What one live-plot update costs the GUI thread, apart from the machine's load. Prints JSON.

bench/gui_latency.py measures gaps of the whole window during a real run, which on a shared
machine mostly measures the other processes. This bench times the plots alone, in GUI-thread
CPU time (``time.thread_time``), which the load changes far less:

- ``steady``: 160 GAN loss updates (six losses and coverage), each ``_redraw`` plus a synchronous
  paint of the plots;
- ``first_losses``: a stage's first losses on fresh plots, CPU per redraw tick (tab, curves and
  legend entries are built then);
- ``beside_busy_thread``: the wall time of one plot update while another thread runs Python code,
  at CPython's default switch interval (5 ms) and at the app's (``app.workers``), i.e. how long
  the GUI thread waits to win the GIL back at each call from Qt into Python.

    QT_QPA_PLATFORM=offscreen PYTHONPATH=$PWD .venv/bin/python bench/gui_update_cost.py
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NAMES = ("d", "g", "d_real", "d_fake", "l_bg", "l_mask")


def stats(values: list[float]) -> dict:
    import numpy as np

    a = np.array(values)
    return {"median_ms": round(float(np.median(a)), 1), "p90_ms": round(float(np.percentile(a, 90)), 1),
            "max_ms": round(float(a.max()), 1)}


def main() -> int:
    from PySide6.QtWidgets import QApplication

    from app.plots import MetricsPlots

    qapp = QApplication(sys.argv[:1])

    def fresh() -> MetricsPlots:
        plots = MetricsPlots()
        plots.resize(880, 260)
        plots.show()
        for _ in range(20):
            qapp.processEvents()
        return plots

    def update(plots: MetricsPlots, step: int, value: float) -> None:
        plots.add_losses(step, {**{n: value for n in NAMES}, "coverage": 0.3}, "gan")
        plots._redraw()
        plots.repaint()
        qapp.processEvents()

    first_ticks = []
    for _ in range(3):
        plots = fresh()
        plots.add_losses(25, {**{n: 0.5 for n in NAMES}, "coverage": 0.3}, "gan")
        ticks = []
        for _ in range(10):
            t = time.thread_time()
            plots._redraw()
            qapp.processEvents()
            ticks.append(round((time.thread_time() - t) * 1000, 1))
        first_ticks.append(ticks)
        plots.close()

    plots = fresh()
    for step in range(1, 11):  # curves built
        update(plots, step * 25, 0.5)
    steady = []
    for step in range(11, 171):
        t = time.thread_time()
        update(plots, step * 25, (step % 7) / 7)
        steady.append((time.thread_time() - t) * 1000)

    stop = threading.Event()

    def busy() -> None:
        x = 0
        while not stop.is_set():
            x += 1

    worker = threading.Thread(target=busy, daemon=True)
    worker.start()
    beside: dict[str, dict] = {}
    import app.workers

    # the app's interval; 0.5 ms when measuring code from before it had one
    app_interval = getattr(app.workers, "GIL_SWITCH_INTERVAL_S", 0.0005)
    default = sys.getswitchinterval()
    for interval in (0.005, app_interval) * 3:
        sys.setswitchinterval(interval)
        walls = []
        for step in range(20):
            t = time.perf_counter()
            update(plots, 5000 + step, 0.5)
            walls.append((time.perf_counter() - t) * 1000)
        beside.setdefault(f"switch_interval_{interval * 1000:g}ms", {"wall": []})["wall"] += walls
    stop.set()
    worker.join()
    sys.setswitchinterval(default)
    print(json.dumps({
        "bench": "gui_update_cost",
        "steady": {"updates": len(steady), **stats(steady)},
        "first_losses_cpu_ms_per_tick": first_ticks,
        "beside_busy_thread_wall": {k: stats(v["wall"]) for k, v in beside.items()},
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
    }, indent=2))
    plots.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
