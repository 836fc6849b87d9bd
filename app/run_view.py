"""The current run as the window shows it outside the panels' own ``on_event``: the run and
device in the status bar, an opened or resumed run's history on the Live tab, and the results
viewer following the newest ``segmenter.pt``.

Kept apart from the window so that "which run is shown" has one owner: a run that starts, is
opened or is forgotten goes through ``show`` (the controller's ``runChanged``) and nothing of the
previous run survives it.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import QLabel, QStatusBar

from app.controllers.training import TrainingController
from app.panels.results import ResultsPanel
from app.panels.training import TrainingPanel
from app.plots import MetricsPlots
from app.preview import HISTORY, PreviewPanel
from app.run_history import logged_losses, saved_previews
from engine.events import CheckpointSaved, PhaseChanged, Started


class RunView(QObject):
    """Follows ``run`` (the TrainingController); ``shown`` says a run (or none, "") is now the
    one on screen, for what depends on it outside (the window title)."""

    shown = Signal(str)

    def __init__(self, run: TrainingController, preview: PreviewPanel, plots: MetricsPlots,
                 training: TrainingPanel, results: ResultsPanel, status_bar: QStatusBar,
                 photos: Callable[[], list[str]], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.run, self.preview, self.plots = run, preview, plots
        self.training, self.results, self.status_bar = training, results, status_bar
        self.photos = photos  # the open folder's photos, as the folder panel listed them
        self._segmenter_stamp: float | None = None
        self.run_label = QLabel("")
        self.device_label = QLabel("device: –")
        status_bar.addWidget(self.run_label, 1)
        status_bar.addPermanentWidget(self.device_label)
        run.runChanged.connect(self.show)
        run.event.connect(self.on_event)
        run.runningChanged.connect(self._running_changed)

    @Slot(str)
    def show(self, run_dir: str) -> None:
        """The current run changed (started, opened, or none): nothing of the previous one stays."""
        self.preview.clear()
        self.plots.clear()
        self.training.reset_progress()
        self._segmenter_stamp = None
        if run_dir:  # what the run folder already holds (an opened or resumed run)
            for step, phase, values in logged_losses(run_dir):
                self.plots.add_losses(step, values, phase)
            for saved in saved_previews(run_dir, HISTORY):
                self.preview.add(saved)
        self.run_label.setText(f"run: {run_dir}" if run_dir else "")
        self.status_bar.clearMessage()  # "checkpoint saved at step N" was the previous run's
        self.device_label.setText("device: –")  # until this run's Started says which
        self.device_label.setStyleSheet("")
        self.results.set_run(run_dir or None, self.photos())
        self.shown.emit(run_dir)

    @Slot(object)
    def on_event(self, ev: object) -> None:
        """What the window itself shows of a run: the device, checkpoints, a new segmenter."""
        if isinstance(ev, Started):
            self.show_device(ev.device)
        elif isinstance(ev, CheckpointSaved):
            self.status_bar.showMessage(f"checkpoint saved at step {ev.step}", 5000)
        elif isinstance(ev, PhaseChanged):
            self.refresh_results()  # a segmenter stage that just ended has written segmenter.pt

    @Slot(bool)
    def _running_changed(self, running: bool) -> None:
        if not running:
            self.refresh_results()

    def show_device(self, device: str) -> None:
        no_cuda = self.training.device.currentText() == "cuda" and not device.startswith("cuda")
        self.device_label.setText(f"device: {device}" + (" · CUDA not available" if no_cuda else ""))
        self.device_label.setStyleSheet("color: #d04040; font-weight: bold" if no_cuda else "")

    def refresh_results(self) -> None:
        """Point the viewer at the run's newest segmenter (during training too)."""
        run_dir = self.run.run_dir
        if not run_dir:
            return
        path = os.path.join(run_dir, "segmenter.pt")
        stamp = os.path.getmtime(path) if os.path.isfile(path) else None
        if stamp != self._segmenter_stamp or self.results.run_dir != run_dir:
            self._segmenter_stamp = stamp
            self.results.set_run(run_dir, self.photos())
