"""The user's side of a method comparison: the dialog that asks what to compare, the checks
before it starts (a folder, no training sharing the CPU), and the Compare tab brought forward."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Slot
from PySide6.QtWidgets import QTabWidget, QWidget

from app import engine_calls
from app.controllers.compare import CompareController
from app.controllers.training import TrainingController
from app.panels.compare import ComparePanel
from app.panels.compare_dialog import CompareDialog
from app.panels.folder import FolderPanel
from app.panels.training import TrainingPanel
from app.run_session import gui_torch_threads


class CompareActions(QObject):
    """Starts comparisons of the open folder on ``comparison`` (the CompareController); the
    Compare panel (``panel``) shows what it says and cancels it."""

    def __init__(self, comparison: CompareController, run: TrainingController,
                 folder_panel: FolderPanel, training: TrainingPanel, runs_dir: Path,
                 report: Callable[[str, str], None], tabs: QTabWidget, panel: ComparePanel,
                 window: QWidget) -> None:
        super().__init__(window)
        self.comparison, self.run, self.folder_panel = comparison, run, folder_panel
        self.training, self.runs_dir, self.report = training, runs_dir, report
        self.tabs, self.panel, self.window = tabs, panel, window
        self.overrides: dict[str, Any] = {}  # CompareConfig fields the dialog does not show (tests)
        self.dialog_box: CompareDialog | None = None  # the last dialog (tests read it)
        panel.cancelRequested.connect(comparison.cancel)
        comparison.started.connect(panel.show_started)
        comparison.progress.connect(panel.show_progress)
        comparison.note.connect(panel.show_note)
        comparison.preview.connect(panel.show_preview)
        comparison.outcome.connect(panel.show_outcome)
        comparison.failed.connect(panel.show_failure)
        comparison.runningChanged.connect(panel.show_running)

    @Slot()
    def dialog(self) -> CompareDialog | None:
        """Ask what to compare (window-modal, not blocking); Compare starts it."""
        folder = self.folder_panel.folder
        if not folder or self.comparison.is_running():
            return None
        name = f"{os.path.basename(folder.rstrip(os.sep))}-compare-{time.strftime('%Y%m%d-%H%M%S')}"
        dialog = CompareDialog(folder, str(self.runs_dir / name),
                               self.training.size.currentData(), self.window)
        dialog.accepted.connect(lambda: self.start(dialog.choice()))
        dialog.finished.connect(dialog.deleteLater)
        self.dialog_box = dialog
        dialog.open()
        return dialog

    def start(self, choice: dict[str, Any]) -> bool:
        """Start comparing ``choice`` (CompareDialog.choice()) on the open folder."""
        folder = self.folder_panel.folder
        if not folder or self.comparison.is_running():
            return False
        if self.run.is_running():
            self.report("Training is running",
                        "Stop the training first: a comparison trains every method and "
                        "would share the CPU with it.")
            return False
        device = self.training.options()["device"]
        try:
            config = engine_calls.compare_config(folder, choice["out"], choice["methods"],
                                                 choice["minutes"], choice["gt"], choice["size"],
                                                 device, self.overrides)
        except ValueError as exc:
            self.report("Invalid comparison settings", str(exc))
            return False
        self.tabs.setCurrentWidget(self.panel)
        return self.comparison.start(config, gui_torch_threads())
