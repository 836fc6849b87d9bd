"""The main window: builds the panels, the controllers and the parts that drive them, and wires
them together.

Each part holds one concern and never imports this module: ``window_layout`` (where things sit),
``opening`` (photo folders and run folders), ``run_view`` (what is shown of the current run),
``export_actions`` and ``compare_actions`` (the dialogs that start those jobs), ``reporting``
(failures). The controllers own the background work; the panels subscribe to the training's
events themselves (``on_event``). What is left here is assembly, the Start button's state and
closing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Slot
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QMainWindow

from app.about import about_text, quick_start_text
from app.closing import agree_to_close
from app.compare_actions import CompareActions
from app.controllers.compare import CompareController
from app.controllers.estimate import EstimateController
from app.controllers.exports import ExportController
from app.controllers.training import TrainingController
from app.dialogs import Prompter
from app.export_actions import ExportActions
from app.gc_guard import collect_in_gui_thread
from app.opening import Opener
from app.panels.compare import ComparePanel
from app.panels.folder import FolderPanel, dropped_folder
from app.panels.log import LogPane
from app.panels.results import ResultsPanel
from app.panels.training import TrainingPanel
from app.plots import MetricsPlots
from app.preview import PreviewPanel
from app.reporting import FailureReporter
from app.run_session import Trainer
from app.run_view import RunView
from app.settings import default_runs_dir, default_settings, recent_folders
from app.training_actions import TrainingActions
from app.window_layout import build_central, build_menus
from app.workers import JobRunner


class MainWindow(QMainWindow):
    def __init__(self, settings: QSettings | None = None, prompter: Prompter | None = None,
                 runs_dir: str | os.PathLike[str] | None = None,
                 trainer: Trainer | None = None) -> None:
        super().__init__()
        collect_in_gui_thread()  # before any worker starts (app/gc_guard.py)
        self.setAcceptDrops(True)
        self.settings = settings or default_settings()
        self.prompter = prompter or Prompter()
        self.runs_dir = Path(runs_dir or self.settings.value("runs_dir", str(default_runs_dir())))
        self.jobs = JobRunner(self)
        self.run = TrainingController(self.runs_dir, trainer, self)
        self.exports = ExportController(self.jobs, self)
        self.comparison = CompareController(self.jobs, self)

        self.folder_panel = FolderPanel()
        self.training = TrainingPanel()
        self.estimates = EstimateController(self)  # "about N minutes here" before Start
        self.training.estimate_wanted.connect(self.estimates.request)
        self.estimates.estimated.connect(self.training.show_estimate)
        self.preview = PreviewPanel()
        self.plots = MetricsPlots()
        self.results = ResultsPanel(self.jobs)
        self.compare = ComparePanel()
        self.log = LogPane()
        self.tabs = build_central(self, (self.folder_panel, self.training),
                                  (self.preview, self.plots),
                                  ((self.results, "Results"), (self.compare, "Compare")), self.log)
        self.failures = FailureReporter(self.log, self.prompter, self)
        report = self.failures.report
        self.opener = Opener(self.folder_panel, self.run, self.comparison, self.training,
                             self.results, self.compare, self.log, self.tabs, self.settings,
                             self.prompter, self.runs_dir, report, self)
        self.run_view = RunView(self.run, self.preview, self.plots, self.training, self.results,
                                self.statusBar(), self.opener.photos, self)
        self.training_actions = TrainingActions(self.run, self.training, self.folder_panel,
                                                self.statusBar(), self)
        self.stop_training = self.training_actions.stop
        self.export_actions = ExportActions(self.exports, self.run, self.folder_panel,
                                            self.prompter, self.tabs, self.results, self)
        self.compare_actions = CompareActions(self.comparison, self.run, self.folder_panel,
                                              self.training, self.runs_dir, report, self.tabs,
                                              self.compare, self)
        self.compare_action = build_menus(
            self, (("Open photo folder…", self.opener.choose_folder, "Ctrl+O"),
                   ("Open run folder…", self.opener.choose_run, "Ctrl+R"),
                   ("Open runs folder", self.open_runs_folder, ""),
                   ("Quit", self.close, "Ctrl+Q")),
            self.compare_actions.dialog,
            (("Quick start", self.show_quick_start), ("About Peel", self.show_about)))
        self.device_label, self.run_label = self.run_view.device_label, self.run_view.run_label
        self._connect()

        self.training.load(self.settings)
        self.folder_panel.set_recent(recent_folders(self.settings))
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 800)
        self._sync_title()
        self._sync_start()

    def _connect(self) -> None:
        log, report = self.log.add, self.failures.report
        panel, results = self.folder_panel, self.results
        panel.chooseRequested.connect(self.opener.choose_folder)
        panel.folderRequested.connect(self.opener.open_folder)
        panel.message.connect(log)
        panel.photoChosen.connect(self.show_photo)
        panel.countsChanged.connect(self._sync_start)
        self.opener.opened.connect(self._sync_title)
        self.opener.opened.connect(self._sync_start)
        self.training_actions.resumeForgotten.connect(self._sync_start)
        self.training.batch.valueChanged.connect(self._sync_start)  # the few-photos warning
        for subscriber in (self.preview, self.plots, self.training, self.log):
            self.run.event.connect(subscriber.on_event)
        self.run_view.shown.connect(self._sync_title)
        self.run.runningChanged.connect(self._sync_start)
        self.run.message.connect(log)
        self.run.failed.connect(report)
        results.message.connect(log)
        results.failed.connect(report)
        results.openFolderRequested.connect(self.open_output_folder)
        results.photoShown.connect(panel.select_photo)
        self.exports.message.connect(log)
        self.exports.failed.connect(report)
        self.exports.openFolderRequested.connect(self.open_output_folder)
        self.compare.openFolderRequested.connect(self.open_output_folder)
        self.comparison.failed.connect(report)
        self.comparison.message.connect(log)
        self.comparison.runningChanged.connect(self._sync_start)

    # -- what tests and scripts use ------------------------------------------------------------
    session = property(lambda self: self.run.session)
    run_dir = property(lambda self: self.run.run_dir)
    resume_dir = property(lambda self: self.run.resume_dir)
    latest_step = property(lambda self: self.run.latest_step)
    export_dialog_box = property(lambda self: self.export_actions.dialog_box)
    compare_dialog_box = property(lambda self: self.compare_actions.dialog_box)

    @property
    def config_overrides(self) -> dict[str, Any]:
        """RunConfig fields the training panel does not show (tests, benches)."""
        return self.run.config_overrides

    @config_overrides.setter
    def config_overrides(self, value: dict[str, Any]) -> None:
        self.run.config_overrides = value

    @property
    def compare_overrides(self) -> dict[str, Any]:
        """CompareConfig fields the compare dialog does not show (tests)."""
        return self.compare_actions.overrides

    @compare_overrides.setter
    def compare_overrides(self, value: dict[str, Any]) -> None:
        self.compare_actions.overrides = value

    def open_folder(self, folder: str, keep_resume: bool = False) -> bool:
        return self.opener.open_folder(folder, keep_resume)

    def open_run(self, run_dir: str) -> bool:
        return self.opener.open_run(run_dir)

    def export_onnx(self, out: str) -> None:
        self.export_actions.export_onnx(out)

    def export_masks(self, out_dir: str, fmt: str = "mask", refine: bool = False) -> None:
        self.export_actions.export_masks(out_dir, fmt, refine)

    def export_masks_dialog(self) -> object:
        return self.export_actions.masks_dialog()

    def compare_dialog(self) -> object:
        return self.compare_actions.dialog()

    def start_compare(self, choice: dict[str, Any]) -> bool:
        return self.compare_actions.start(choice)

    def report_failure(self, title: str, message: str, details: str = "") -> None:
        self.failures.report(title, message, details)

    # -- the window's own state ----------------------------------------------------------------
    @Slot()
    def _sync_title(self) -> None:
        parts = []
        if self.run_dir:
            parts.append(f"run {Path(self.run_dir).name}")
        if self.folder_panel.folder:
            parts.append(Path(self.folder_panel.folder).name or self.folder_panel.folder)
        self.setWindowTitle(" · ".join(parts + ["Peel"]) if parts else "Peel")

    @Slot()
    def _sync_start(self) -> None:
        """What can start now: training needs photos and no comparison; a comparison needs
        photos and nothing running."""
        running, comparing = self.run.is_running(), self.comparison.is_running()
        usable = self.folder_panel.usable_count()
        self.training.set_running(running, can_start=usable > 0 and not comparing)
        self.training.show_resume(self.resume_dir)
        self.training.warn_photos(usable, self.folder_panel.scanning
                                  or self.folder_panel.checking())
        self.compare_action.setEnabled(usable > 0 and not running and not comparing)

    @Slot(int)
    def show_photo(self, row: int) -> None:
        """A thumbnail was chosen: show its mask when there is a segmenter to show it with."""
        if self.results.predictor is None:
            return
        self.tabs.setCurrentWidget(self.results)
        self.results.show_photo(row)

    @Slot()
    def open_runs_folder(self) -> None:
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.open_output_folder(str(self.runs_dir))

    @Slot(str)
    def open_output_folder(self, folder: str) -> None:
        if self.prompter.open_folder(folder) is False:
            text = f"Could not open {folder} (no file manager answered); the files are there."
            self.log.add(text, "warning")
            self.statusBar().showMessage(text, 15000)

    @Slot()
    def show_quick_start(self) -> None:
        self.prompter.inform(self, "Quick start", quick_start_text())

    @Slot()
    def show_about(self) -> None:
        self.prompter.inform(self, "About Peel", about_text())

    # -- window --------------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if dropped_folder(event):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        folder = dropped_folder(event)
        if folder:
            event.acceptProposedAction()
            self.open_folder(folder)

    def closeEvent(self, event: QCloseEvent) -> None:
        if not agree_to_close(self, self.prompter, self.run, self.comparison):
            event.ignore()
            return
        self.jobs.shutdown()
        self.folder_panel.shutdown()  # joins a folder listing still running, stops thumbnails
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.training.save(self.settings)
        self.settings.sync()
        event.accept()
