"""Turning engine events into updates of the window's panels (always on the GUI thread).

Each handler only stores or appends; the panels' timers do the drawing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.events import (
    CheckpointSaved,
    Failed,
    Finished,
    Losses,
    PhaseChanged,
    Preview,
    Progress,
    Started,
    WarningEvent,
)

if TYPE_CHECKING:
    from app.window import MainWindow


def dispatch(w: MainWindow, ev: object) -> None:
    match ev:
        case Progress():
            w.latest_progress = ev  # applied by the window's timer
            w.latest_step = ev.step
        case Losses():
            w.plots.add_losses(ev.step, ev.values, ev.phase)
        case Preview():
            w.preview.add(ev)
            w.plots.add_preview_coverage(ev.step, ev.coverage)
        case Started():
            w.show_device(ev.device)
            shown = w.device_label.text().removeprefix("device: ")
            w.log.add(f"Started {ev.method} on {shown} (phase {ev.phase}, step {ev.step})")
        case PhaseChanged():
            w.log.add(f"Phase: {ev.phase}" + (f" · {ev.detail}" if ev.detail else ""))
            w.training.progress.setFormat(f"{ev.phase} · step {ev.step}")
            w.refresh_results()  # a segmenter stage that just ended has written segmenter.pt
        case CheckpointSaved():
            w.last_checkpoint = ev.path
            w.statusBar().showMessage(f"checkpoint saved at step {ev.step}", 5000)
        case WarningEvent():
            w.log.add(ev.message, "warning")
        case Finished():
            how = "stopped" if ev.stopped else "finished"
            w.run_complete = not ev.stopped
            w.log.add(f"Run {how} at step {ev.step}: {ev.run_dir}", "ok")
            w.training.progress.setFormat(f"{how} · step {ev.step}")
        case Failed():
            w.report_failure("Training failed", ev.error, ev.traceback)
        case _:
            w.log.add(f"(unknown event {type(ev).__name__})")
