"""Opening a photo folder or a run folder, and the rule that binds the two: a run belongs to its
photo folder, so choosing another folder puts the run (and the comparison) away, and opening a
run opens its folder.

A folder or run is never changed under a running training or comparison: they read its photos.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Signal, Slot
from PySide6.QtWidgets import QTabWidget, QWidget

from app import engine_calls
from app.controllers.compare import CompareController
from app.controllers.training import TrainingController
from app.dialogs import Prompter
from app.panels.compare import ComparePanel
from app.panels.folder import FolderPanel
from app.panels.log import LogPane
from app.panels.results import ResultsPanel
from app.panels.training import TrainingPanel
from app.run_history import logged_losses
from app.settings import add_recent_folder, recent_folders


class Opener(QObject):
    """``opened`` follows every folder or run shown (the title and the Start button depend on it)."""

    opened = Signal()

    def __init__(self, folder_panel: FolderPanel, run: TrainingController,
                 comparison: CompareController, training: TrainingPanel, results: ResultsPanel,
                 compare: ComparePanel, log: LogPane, tabs: QTabWidget, settings: QSettings,
                 prompter: Prompter, runs_dir: Path, report: Callable[[str, str], None],
                 window: QWidget) -> None:
        super().__init__(window)
        self.folder_panel, self.run, self.comparison = folder_panel, run, comparison
        self.training, self.results, self.compare, self.log = training, results, compare, log
        self.tabs, self.settings, self.prompter = tabs, settings, prompter
        self.runs_dir, self.report, self.window = runs_dir, report, window
        folder_panel.scanned.connect(self._folder_listed)  # a big folder is listed in the background

    def photos(self) -> list[str]:
        """The open folder's photos as the folder panel listed them (never a scan on this thread:
        a 50,000-file folder took seconds); empty while a big folder is still being listed."""
        panel = self.folder_panel
        if panel.scanning:
            return []
        return [panel.model.path(row) for row in range(panel.model.rowCount())]

    @Slot()
    def choose_folder(self) -> None:
        start = self.folder_panel.folder or (recent_folders(self.settings) or [""])[0]
        folder = self.prompter.choose_folder(self.window, "Choose a folder of photos", start)
        if folder:
            self.open_folder(folder)

    @Slot(str)
    def open_folder(self, folder: str, keep_resume: bool = False) -> bool:
        """Show ``folder``'s photos. Another folder means another subject: the run, its plots
        and previews, the results and the comparison of the previous one are put away."""
        if self.run.is_running() or self.comparison.is_running():
            self.report("Cannot change the folder now",
                        "Stop the training or the comparison first: it is using the "
                        "photos of the open folder.")
            return False
        try:
            self.folder_panel.show_folder(folder)  # logs "Folder ...: N images" via message
        except OSError as exc:
            self.report("Cannot open folder", str(exc))
            return False
        if not keep_resume:
            self.run.forget()
            self.compare.clear()
        self.folder_panel.set_recent(add_recent_folder(self.settings, folder))
        self.opened.emit()  # the results view follows when the listing is shown (_folder_listed)
        return True

    @Slot()
    def _folder_listed(self) -> None:
        self.opened.emit()
        if self.run.run_dir:
            self.results.set_run(self.run.run_dir, self.photos())

    @Slot()
    def choose_run(self) -> None:
        folder = self.prompter.choose_folder(self.window, "Open a run folder", str(self.runs_dir))
        if folder:
            self.open_run(folder)

    def open_run(self, run_dir: str) -> bool:
        """Show a previous run (its previews, curves, segmenter); Start then resumes it."""
        try:
            config = engine_calls.read_run_config(run_dir)
        except (OSError, ValueError) as exc:
            self.report("Not a Peel run folder", f"{run_dir}: {exc}")
            return False
        if self.run.is_running():
            self.report("Training is running", "Stop the training before opening another run.")
            return False
        if os.path.isdir(config.folder):
            if not self.open_folder(config.folder, keep_resume=True):
                return False
        self.compare.clear()
        self.training.apply_config(config)
        losses = logged_losses(run_dir)
        self.run.show_run(run_dir, losses[-1][0] if losses else 0)  # -> RunView.show
        self.training.reset_progress(f"opened · step {self.run.latest_step}")
        if self.results.predictor is not None:
            self.tabs.setCurrentWidget(self.results)
        self.log.add(f"Opened run {run_dir} (Start resumes it)")
        self.opened.emit()
        return True
