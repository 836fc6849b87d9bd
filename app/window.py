"""The main window: wires the panels to a training session, the results viewer and the exports."""

from __future__ import annotations

import os
import time
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, Slot
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QLabel, QMainWindow, QSplitter, QTabWidget, QVBoxLayout, QWidget

from app import engine_calls
from app.dialogs import Prompter
from app.dispatch import dispatch
from app.panels.compare import ComparePanel
from app.panels.folder import FolderPanel, dropped_folder
from app.panels.log import LogPane
from app.panels.results import ResultsPanel
from app.panels.training import TrainingPanel
from app.plots import MetricsPlots
from app.preview import PreviewPanel
from app.run_session import Trainer, TrainingSession
from app.settings import add_recent_folder, default_runs_dir, default_settings, recent_folders
from app.window_jobs import WindowJobs
from app.workers import JobRunner
from engine.runs.folder import RunFolder


class MainWindow(WindowJobs, QMainWindow):
    def __init__(self, settings: QSettings | None = None, prompter: Prompter | None = None,
                 runs_dir: str | os.PathLike[str] | None = None,
                 trainer: Trainer | None = None) -> None:
        super().__init__()
        self.setWindowTitle("Peel")
        self.setAcceptDrops(True)
        self.settings = settings or default_settings()
        self.prompter = prompter or Prompter()
        self.runs_dir = Path(runs_dir or self.settings.value("runs_dir", str(default_runs_dir())))
        self.trainer = trainer  # None: the engine's own trainer (tests inject others)
        self.session: TrainingSession | None = None
        self.run_dir: str | None = None
        self.resume_dir: str | None = None
        self.jobs = JobRunner(self)
        self.latest_progress = None
        self.last_checkpoint: str | None = None
        self.latest_step = 0
        self.run_complete = False
        self._segmenter_stamp: float | None = None
        self.config_overrides: dict = {}  # RunConfig fields the panel does not show (tests)
        self.compare_overrides: dict = {}  # CompareConfig fields the dialog does not show (tests)

        self.folder_panel = FolderPanel()
        self.training = TrainingPanel()
        self.preview = PreviewPanel()
        self.plots = MetricsPlots()
        self.results = ResultsPanel(self.jobs)
        self.compare = ComparePanel(self.jobs)
        self.log = LogPane()
        self._build_layout()
        self._build_menus()
        self.device_label = QLabel("device: –")
        self.run_label = QLabel("")
        self.statusBar().addWidget(self.run_label, 1)
        self.statusBar().addPermanentWidget(self.device_label)
        self._connect()

        self.ui_timer = QTimer(self)
        self.ui_timer.setInterval(100)
        self.ui_timer.timeout.connect(self._apply_progress)
        self.ui_timer.start()

        self.training.load(self.settings)
        self.folder_panel.set_recent(recent_folders(self.settings))
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 800)
        self._sync_start()

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
        live.setSizes([380, 220])
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

    def _connect(self) -> None:
        self.folder_panel.chooseRequested.connect(self.choose_folder)
        self.folder_panel.folderRequested.connect(self.open_folder)
        self.folder_panel.scanned.connect(self._folder_listed)  # a big folder is listed in the background
        self.folder_panel.message.connect(self.log.add)
        self.training.startRequested.connect(self.start_training)
        self.training.newRunRequested.connect(self.forget_resume)
        self.training.pauseToggled.connect(self.set_paused)
        self.training.stopRequested.connect(self.stop_training)
        self.results.message.connect(self.log.add)
        self.results.failed.connect(self.report_failure)
        self.results.openFolderRequested.connect(self.open_output_folder)
        self.results.exportOnnxRequested.connect(self.export_onnx_dialog)
        self.results.exportMasksRequested.connect(self.export_masks_dialog)
        self.compare.message.connect(self.log.add)
        self.compare.failed.connect(self.report_failure)
        self.compare.openFolderRequested.connect(self.open_output_folder)
        self.compare.runningChanged.connect(self._compare_running)

    # -- folders and runs ----------------------------------------------------------------------
    @Slot()
    def choose_folder(self) -> None:
        start = self.folder_panel.folder or (recent_folders(self.settings) or [""])[0]
        folder = self.prompter.choose_folder(self, "Choose a folder of photos", start)
        if folder:
            self.open_folder(folder)

    @Slot(str)
    def open_folder(self, folder: str, keep_resume: bool = False) -> bool:
        try:
            self.folder_panel.show_folder(folder)  # logs "Folder ...: N images" via message
        except OSError as exc:
            self.report_failure("Cannot open folder", str(exc))
            return False
        if not keep_resume:
            self.resume_dir = None
        self.folder_panel.set_recent(add_recent_folder(self.settings, folder))
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
        """Show a previous run's results; Start then resumes its training."""
        try:
            config = engine_calls.read_run_config(run_dir)
        except (OSError, ValueError) as exc:
            self.report_failure("Not a Peel run folder", f"{run_dir}: {exc}")
            return False
        if os.path.isdir(config.folder):
            self.open_folder(config.folder, keep_resume=True)
        self.resume_dir = run_dir
        self.run_dir = run_dir
        self.training.apply_config(config)
        self.training.reset_progress()
        self.results.set_run(run_dir, self._photos())
        if self.results.predictor is not None:
            self.tabs.setCurrentWidget(self.results)
        self.run_label.setText(f"run: {run_dir}")
        self.log.add(f"Opened run {run_dir} (Start resumes it)")
        self._sync_start()
        return True

    def _sync_start(self) -> None:
        running, comparing = self.session is not None, self.compare.is_running()
        has_photos = self.folder_panel.image_count > 0
        self.training.set_running(running, can_start=has_photos and not comparing)
        self.training.show_resume(self.resume_dir)
        self.compare_action.setEnabled(has_photos and not running and not comparing)

    @Slot()
    def forget_resume(self) -> None:
        self.resume_dir = None
        self._sync_start()

    @Slot()
    def open_runs_folder(self) -> None:
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.open_output_folder(str(self.runs_dir))

    @Slot(str)
    def open_output_folder(self, folder: str) -> None:
        self.prompter.open_folder(folder)

    # -- training ------------------------------------------------------------------------------
    @Slot()
    def start_training(self) -> None:
        if self.session is not None or not self.folder_panel.folder:
            return
        if self.resume_dir:
            run_dir = self.resume_dir
        else:
            name = f"{Path(self.folder_panel.folder).name}-{time.strftime('%Y%m%d-%H%M%S')}"
            run_dir = str(self.runs_dir / name)
        try:
            config = engine_calls.make_config(self.folder_panel.folder, run_dir,
                                              self.training.options(), **self.config_overrides)
        except ValueError as exc:
            self.report_failure("Invalid settings", str(exc))
            return
        warning = engine_calls.device_warning(self.training.options()["device"])
        if warning:  # the engine logs it too (a WarningEvent); the status bar says it at once
            self.statusBar().showMessage(warning, 15000)
        self.run_dir = run_dir
        self.run_complete = False
        self.preview.clear()
        self.plots.clear()
        self.session = TrainingSession(config, trainer=self.trainer, resume=bool(self.resume_dir))
        self.session.event.connect(self.on_event)
        self.session.crashed.connect(self.on_crash)
        self.session.ended.connect(self.on_ended)
        self.session.start()
        self.run_label.setText(f"run: {run_dir}")
        self.log.add(f"{'Resuming' if self.resume_dir else 'Starting'} run in {run_dir}")
        self._sync_start()

    @Slot(bool)
    def set_paused(self, paused: bool) -> None:
        if self.session is None:
            return
        if paused:
            self.session.pause()
            self.log.add("Paused (at the next step boundary)")
        else:
            self.session.resume()
            self.log.add("Resumed")

    @Slot()
    def stop_training(self) -> None:
        if self.session is not None:
            self.session.stop()
            self.training.stop_button.setEnabled(False)
            self.log.add("Stopping at the next step; a checkpoint will be saved")

    @Slot(object)
    def on_event(self, ev: object) -> None:
        dispatch(self, ev)

    @Slot(str, str)
    def on_crash(self, message: str, details: str) -> None:
        self.report_failure("Training failed", message, details)

    @Slot()
    def on_ended(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            session.join()
        resumable = (not self.run_complete and self.run_dir is not None
                     and RunFolder(self.run_dir).resumable())  # a step checkpoint, not any file
        self.resume_dir = self.run_dir if resumable else None
        self._sync_start()
        self.refresh_results()

    def show_device(self, device: str) -> None:
        """The device from the Started event; on CPU, with the threads training really uses."""
        if device.startswith("cpu") and self.session is not None:
            n = self.session.torch_threads
            device = f"cpu ({n} training thread{'s' if n > 1 else ''}, 1 core kept for the window)" \
                if n < (os.cpu_count() or 1) else f"cpu ({n} threads)"
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

    @Slot()
    def _apply_progress(self) -> None:
        ev, self.latest_progress = self.latest_progress, None
        if ev is not None:
            self.training.show_progress(ev.step, ev.fraction, ev.steps_per_s, ev.eta_s, ev.phase)

    def report_failure(self, title: str, message: str, details: str = "") -> None:
        self.log.add(f"{title}: {message}", "error")
        self.prompter.error(self, title, message, details)

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
        if self.session is not None:
            if not self.prompter.ask(self, "Training is running",
                                     "Stop training and quit? A checkpoint is saved first, so "
                                     "the run can be resumed."):
                event.ignore()
                return
            session, self.session = self.session, None
            session.stop()
            session.join()
        if self.compare.is_running() and not self.prompter.ask(
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
