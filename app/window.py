"""The main window: builds the panels and the controllers and wires them together.

The controllers own the background work (training, exports, comparison); the panels subscribe to
the training's events themselves (``on_event``). What is left here is what needs the whole window:
which folder and run are shown, dialogs, menus and closing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, Slot
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QLabel, QMainWindow, QSplitter, QTabWidget, QVBoxLayout, QWidget

from app import engine_calls
from app.about import about_text, quick_start_text
from app.controllers.compare import CompareController
from app.controllers.exports import ExportController
from app.controllers.training import TrainingController
from app.dialogs import Prompter
from app.panels.compare import ComparePanel
from app.panels.compare_dialog import CompareDialog
from app.panels.export_dialog import ExportMasksDialog
from app.panels.folder import FolderPanel, dropped_folder
from app.panels.log import LogPane
from app.panels.results import ResultsPanel
from app.panels.training import TrainingPanel
from app.plots import MetricsPlots
from app.preview import HISTORY, PreviewPanel
from app.run_history import logged_losses, saved_previews
from app.run_session import Trainer, TrainingSession, gui_torch_threads
from app.settings import add_recent_folder, default_runs_dir, default_settings, recent_folders
from app.workers import JobRunner
from engine.events import CheckpointSaved, PhaseChanged, Started


def default_masks_dir(folder: str) -> str:
    """Masks go next to the photos, where the user will look: ``<folder>-masks``."""
    folder = folder.rstrip(os.sep) or folder
    return f"{folder}-masks"


class MainWindow(QMainWindow):
    def __init__(self, settings: QSettings | None = None, prompter: Prompter | None = None,
                 runs_dir: str | os.PathLike[str] | None = None,
                 trainer: Trainer | None = None) -> None:
        super().__init__()
        self.setAcceptDrops(True)
        self.settings = settings or default_settings()
        self.prompter = prompter or Prompter()
        self.runs_dir = Path(runs_dir or self.settings.value("runs_dir", str(default_runs_dir())))
        self.jobs = JobRunner(self)
        self.run = TrainingController(self.runs_dir, trainer, self)
        self.exports = ExportController(self.jobs, self)
        self.comparison = CompareController(self.jobs, self)
        self.compare_overrides: dict = {}  # CompareConfig fields the dialog does not show (tests)
        self._segmenter_stamp: float | None = None

        self.folder_panel = FolderPanel()
        self.training = TrainingPanel()
        self.preview = PreviewPanel()
        self.plots = MetricsPlots()
        self.results = ResultsPanel(self.jobs)
        self.compare = ComparePanel()
        self.log = LogPane()
        self._build_layout()
        self._build_menus()
        self.device_label = QLabel("device: –")
        self.run_label = QLabel("")
        self.statusBar().addWidget(self.run_label, 1)
        self.statusBar().addPermanentWidget(self.device_label)
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

    # -- what tests and scripts read -----------------------------------------------------------
    @property
    def session(self) -> TrainingSession | None:
        return self.run.session

    @property
    def run_dir(self) -> str | None:
        return self.run.run_dir

    @property
    def resume_dir(self) -> str | None:
        return self.run.resume_dir

    @property
    def latest_step(self) -> int:
        return self.run.latest_step

    @property
    def config_overrides(self) -> dict[str, Any]:
        return self.run.config_overrides

    @config_overrides.setter
    def config_overrides(self, value: dict[str, Any]) -> None:
        self.run.config_overrides = value

    # -- construction --------------------------------------------------------------------------
    def _build_layout(self) -> None:
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(6, 6, 6, 6)
        lv.addWidget(self.folder_panel, 1)
        lv.addWidget(self.training, 0)
        live = QSplitter(Qt.Orientation.Vertical)
        live.addWidget(self.preview)
        live.addWidget(self.plots)
        live.setSizes([360, 260])
        self.tabs = QTabWidget()
        self.tabs.addTab(live, "Live training")
        self.tabs.addTab(self.results, "Results")
        self.tabs.addTab(self.compare, "Compare")
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.tabs)
        right.addWidget(self.log)
        right.setSizes([600, 120])
        main = QSplitter(Qt.Orientation.Horizontal)
        main.addWidget(left)
        main.addWidget(right)
        main.setSizes([380, 900])
        main.setStretchFactor(1, 1)
        self.setCentralWidget(main)

    def _build_menus(self) -> None:
        menu = self.menuBar().addMenu("&File")
        for text, slot, key in (("Open photo folder…", self.choose_folder, "Ctrl+O"),
                                ("Open run folder…", self.choose_run, "Ctrl+R"),
                                ("Open runs folder", self.open_runs_folder, ""),
                                ("Quit", self.close, "Ctrl+Q")):
            action = QAction(text, self)
            if key:
                action.setShortcut(key)
            action.triggered.connect(slot)
            menu.addAction(action)
        self.compare_action = QAction("Compare methods…", self)
        self.compare_action.setToolTip("Train several methods on this folder with the same budget "
                                       "and show their masks (and scores) side by side")
        self.compare_action.triggered.connect(self.compare_dialog)
        self.menuBar().addMenu("&Tools").addAction(self.compare_action)
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction("Quick start", self.show_quick_start)
        help_menu.addAction("About Peel", self.show_about)

    def _connect(self) -> None:
        self.folder_panel.chooseRequested.connect(self.choose_folder)
        self.folder_panel.folderRequested.connect(self.open_folder)
        self.folder_panel.scanned.connect(self._folder_listed)  # a big folder is listed in the background
        self.folder_panel.message.connect(self.log.add)
        self.folder_panel.photoChosen.connect(self.show_photo)
        self.folder_panel.countsChanged.connect(self._sync_start)
        self.training.startRequested.connect(self.start_training)
        self.training.newRunRequested.connect(self.forget_resume)
        self.training.pauseToggled.connect(self.set_paused)
        self.training.batch.valueChanged.connect(self._sync_start)  # the few-photos warning
        self.training.stopRequested.connect(self.stop_training)
        for panel in (self.preview, self.plots, self.training, self.log):
            self.run.event.connect(panel.on_event)
        self.run.event.connect(self._on_run_event)
        self.run.runChanged.connect(self._show_run)
        self.run.runningChanged.connect(self._training_running)
        self.run.message.connect(self.log.add)
        self.run.failed.connect(self.report_failure)
        self.results.message.connect(self.log.add)
        self.results.failed.connect(self.report_failure)
        self.results.openFolderRequested.connect(self.open_output_folder)
        self.results.exportOnnxRequested.connect(self.export_onnx_dialog)
        self.results.exportMasksRequested.connect(self.export_masks_dialog)
        self.results.cancelExportRequested.connect(self.exports.cancel)
        self.results.photoShown.connect(self.folder_panel.select_photo)
        self.exports.started.connect(self.results.export_started)
        self.exports.progress.connect(self.results.export_progress)
        self.exports.ended.connect(self.results.export_ended)
        self.exports.message.connect(self.log.add)
        self.exports.failed.connect(self.report_failure)
        self.exports.openFolderRequested.connect(self.open_output_folder)
        self.compare.openFolderRequested.connect(self.open_output_folder)
        self.compare.cancelRequested.connect(self.comparison.cancel)
        self.comparison.started.connect(self.compare.show_started)
        self.comparison.progress.connect(self.compare.show_progress)
        self.comparison.note.connect(self.compare.show_note)
        self.comparison.preview.connect(self.compare.show_preview)
        self.comparison.outcome.connect(self.compare.show_outcome)
        self.comparison.failed.connect(self.compare.show_failure)
        self.comparison.failed.connect(self.report_failure)
        self.comparison.message.connect(self.log.add)
        self.comparison.runningChanged.connect(self.compare.show_running)
        self.comparison.runningChanged.connect(self._compare_running)

    # -- folders and runs ----------------------------------------------------------------------
    @Slot()
    def choose_folder(self) -> None:
        start = self.folder_panel.folder or (recent_folders(self.settings) or [""])[0]
        folder = self.prompter.choose_folder(self, "Choose a folder of photos", start)
        if folder:
            self.open_folder(folder)

    @Slot(str)
    def open_folder(self, folder: str, keep_resume: bool = False) -> bool:
        """Show ``folder``'s photos. Another folder means another subject: the run, its plots
        and previews, the results and the comparison of the previous one are put away."""
        if self.run.is_running() or self.comparison.is_running():
            self.report_failure("Cannot change the folder now",
                                "Stop the training or the comparison first: it is using the "
                                "photos of the open folder.")
            return False
        try:
            self.folder_panel.show_folder(folder)  # logs "Folder ...: N images" via message
        except OSError as exc:
            self.report_failure("Cannot open folder", str(exc))
            return False
        if not keep_resume:
            self.run.forget()
            self.compare.clear()
        self.folder_panel.set_recent(add_recent_folder(self.settings, folder))
        self._sync_title()
        self._sync_start()  # the results view follows when the listing is shown (_folder_listed)
        return True

    def _photos(self) -> list[str]:
        """The open folder's photos as the folder panel listed them (never a scan on this thread:
        a 50,000-file folder took seconds); empty while a big folder is still being listed."""
        panel = self.folder_panel
        if panel.scanning:
            return []
        return [panel.model.path(row) for row in range(panel.model.rowCount())]

    @Slot()
    def _folder_listed(self) -> None:
        self._sync_start()
        if self.run_dir:
            self.results.set_run(self.run_dir, self._photos())

    @Slot()
    def choose_run(self) -> None:
        folder = self.prompter.choose_folder(self, "Open a run folder", str(self.runs_dir))
        if folder:
            self.open_run(folder)

    def open_run(self, run_dir: str) -> bool:
        """Show a previous run (its previews, curves, segmenter); Start then resumes it."""
        try:
            config = engine_calls.read_run_config(run_dir)
        except (OSError, ValueError) as exc:
            self.report_failure("Not a Peel run folder", f"{run_dir}: {exc}")
            return False
        if self.run.is_running():
            self.report_failure("Training is running", "Stop the training before opening "
                                "another run.")
            return False
        if os.path.isdir(config.folder):
            if not self.open_folder(config.folder, keep_resume=True):
                return False
        self.compare.clear()
        self.training.apply_config(config)
        losses = logged_losses(run_dir)
        self.run.show_run(run_dir, losses[-1][0] if losses else 0)  # -> _show_run
        self.training.reset_progress(f"opened · step {self.latest_step}")
        if self.results.predictor is not None:
            self.tabs.setCurrentWidget(self.results)
        self.log.add(f"Opened run {run_dir} (Start resumes it)")
        self._sync_start()
        return True

    @Slot(str)
    def _show_run(self, run_dir: str) -> None:
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
        self.statusBar().clearMessage()  # "checkpoint saved at step N" was the previous run's
        self.device_label.setText("device: –")  # until this run's Started says which
        self.device_label.setStyleSheet("")
        self.results.set_run(run_dir or None, self._photos())
        self._sync_title()

    def _sync_title(self) -> None:
        parts = []
        if self.run_dir:
            parts.append(f"run {Path(self.run_dir).name}")
        if self.folder_panel.folder:
            parts.append(Path(self.folder_panel.folder).name or self.folder_panel.folder)
        self.setWindowTitle(" · ".join(parts + ["Peel"]) if parts else "Peel")

    @Slot()
    def _sync_start(self) -> None:
        running, comparing = self.run.is_running(), self.comparison.is_running()
        has_photos = self.folder_panel.usable_count() > 0
        self.training.set_running(running, can_start=has_photos and not comparing)
        self.training.show_resume(self.resume_dir)
        self.training.warn_photos(self.folder_panel.usable_count(), self.folder_panel.scanning
                                  or self.folder_panel.checking())
        self.compare_action.setEnabled(has_photos and not running and not comparing)

    @Slot(int)
    def show_photo(self, row: int) -> None:
        """A thumbnail was chosen: show its mask when there is a segmenter to show it with."""
        if self.results.predictor is None:
            return
        self.tabs.setCurrentWidget(self.results)
        self.results.show_photo(row)

    @Slot()
    def forget_resume(self) -> None:
        self.run.forget_resume()
        self._sync_start()

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

    # -- training ------------------------------------------------------------------------------
    @Slot()
    def start_training(self) -> None:
        if self.run.is_running() or not self.folder_panel.folder:
            return
        options = self.training.options()
        if not self.run.start(self.folder_panel.folder, options):
            return
        warning = engine_calls.device_warning(options["device"])
        if warning:  # the engine logs it too (a WarningEvent); the status bar says it at once
            self.statusBar().showMessage(warning, 15000)

    @Slot(bool)
    def set_paused(self, paused: bool) -> None:
        self.run.set_paused(paused)
        self.training.show_paused(paused and self.run.is_running())

    @Slot()
    def stop_training(self) -> None:
        if self.run.is_running():
            self.run.stop()
            self.training.stop_button.setEnabled(False)

    @Slot(object)
    def _on_run_event(self, ev: object) -> None:
        """What the window itself shows of a run: the device, checkpoints, a new segmenter."""
        if isinstance(ev, Started):
            self.show_device(ev.device)
        elif isinstance(ev, CheckpointSaved):
            self.statusBar().showMessage(f"checkpoint saved at step {ev.step}", 5000)
        elif isinstance(ev, PhaseChanged):
            self.refresh_results()  # a segmenter stage that just ended has written segmenter.pt

    @Slot(bool)
    def _training_running(self, running: bool) -> None:
        self._sync_start()
        if not running:
            self.refresh_results()

    def show_device(self, device: str) -> None:
        no_cuda = self.training.device.currentText() == "cuda" and not device.startswith("cuda")
        self.device_label.setText(f"device: {device}" + (" · CUDA not available" if no_cuda else ""))
        self.device_label.setStyleSheet("color: #d04040; font-weight: bold" if no_cuda else "")

    def refresh_results(self) -> None:
        """Point the viewer at the run's newest segmenter (during training too)."""
        if not self.run_dir:
            return
        path = os.path.join(self.run_dir, "segmenter.pt")
        stamp = os.path.getmtime(path) if os.path.isfile(path) else None
        if stamp != self._segmenter_stamp or self.results.run_dir != self.run_dir:
            self._segmenter_stamp = stamp
            self.results.set_run(self.run_dir, self._photos())

    def report_failure(self, title: str, message: str, details: str = "") -> None:
        self.log.add(f"{title}: {message}", "error")
        self.prompter.error(self, title, message, details)

    # -- exports -------------------------------------------------------------------------------
    @Slot()
    def export_onnx_dialog(self) -> None:
        if not self.run_dir:
            return
        default = os.path.join(self.run_dir, "segmenter.onnx")
        out = self.prompter.save_file(self, "Export ONNX model", default, "ONNX model (*.onnx)")
        if out:
            self.export_onnx(out)

    def export_onnx(self, out: str) -> None:
        self.tabs.setCurrentWidget(self.results)
        self.exports.start(engine_calls.onnx_job(self.run_dir, out), "ONNX export")

    @Slot()
    def export_masks_dialog(self) -> ExportMasksDialog | None:
        """Ask for format and folder (window-modal, not blocking); OK starts the export."""
        if not self.run_dir or not self.folder_panel.folder:
            return None
        dialog = ExportMasksDialog(default_masks_dir(self.folder_panel.folder), self)
        dialog.accepted.connect(lambda: self.export_masks(*self._masks_choice(dialog)))
        dialog.finished.connect(dialog.deleteLater)
        self.export_dialog_box = dialog
        dialog.open()
        return dialog

    @staticmethod
    def _masks_choice(dialog: ExportMasksDialog) -> tuple[str, str, bool]:
        fmt, out_dir, refine = dialog.choice()
        return out_dir, fmt, refine

    def export_masks(self, out_dir: str, fmt: str = "mask", refine: bool = False) -> None:
        job = engine_calls.masks_job(self.run_dir, self.folder_panel.folder, out_dir, fmt, refine)
        self.tabs.setCurrentWidget(self.results)
        self.exports.start(job, "Mask export")

    # -- method comparison ---------------------------------------------------------------------
    @Slot()
    def compare_dialog(self) -> CompareDialog | None:
        """Ask what to compare (window-modal, not blocking); Compare starts it."""
        folder = self.folder_panel.folder
        if not folder or self.comparison.is_running():
            return None
        name = f"{os.path.basename(folder.rstrip(os.sep))}-compare-{time.strftime('%Y%m%d-%H%M%S')}"
        dialog = CompareDialog(folder, str(self.runs_dir / name),
                               self.training.size.currentData(), self)
        dialog.accepted.connect(lambda: self.start_compare(dialog.choice()))
        dialog.finished.connect(dialog.deleteLater)
        self.compare_dialog_box = dialog
        dialog.open()
        return dialog

    def start_compare(self, choice: dict[str, Any]) -> bool:
        """Start comparing ``choice`` (CompareDialog.choice()) on the open folder."""
        folder = self.folder_panel.folder
        if not folder or self.comparison.is_running():
            return False
        if self.run.is_running():
            self.report_failure("Training is running",
                                "Stop the training first: a comparison trains every method and "
                                "would share the CPU with it.")
            return False
        device = self.training.options()["device"]
        try:
            config = engine_calls.compare_config(folder, choice["out"], choice["methods"],
                                                 choice["minutes"], choice["gt"], choice["size"],
                                                 device, self.compare_overrides)
        except ValueError as exc:
            self.report_failure("Invalid comparison settings", str(exc))
            return False
        self.tabs.setCurrentWidget(self.compare)
        return self.comparison.start(config, gui_torch_threads())

    @Slot(bool)
    def _compare_running(self, running: bool) -> None:
        self._sync_start()

    # -- help ----------------------------------------------------------------------------------
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
        if self.run.is_running():
            if not self.prompter.ask(self, "Training is running",
                                     "Stop training and quit? A checkpoint is saved first, so "
                                     "the run can be resumed."):
                event.ignore()
                return
            self.run.shutdown()
        if self.comparison.is_running() and not self.prompter.ask(
                self, "Comparison is running", "Stop the comparison and quit? Finished methods "
                "are kept and reused when you compare into the same folder again."):
            event.ignore()
            return
        self.jobs.shutdown()
        self.folder_panel.shutdown()  # joins a folder listing still running, stops thumbnails
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.training.save(self.settings)
        self.settings.sync()
        event.accept()
