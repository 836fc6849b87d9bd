"""The training panel's buttons turned into calls on the TrainingController: Start (with the
open folder and the panel's settings), Pause/Resume, Stop, and "new run" instead of resuming."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import QStatusBar

from app import engine_calls
from app.controllers.training import TrainingController
from app.panels.folder import FolderPanel
from app.panels.training import TrainingPanel


class TrainingActions(QObject):
    """``resumeForgotten``: Start no longer resumes the shown run (the Start button follows)."""

    resumeForgotten = Signal()

    def __init__(self, run: TrainingController, training: TrainingPanel,
                 folder_panel: FolderPanel, status_bar: QStatusBar,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.run, self.training, self.folder_panel = run, training, folder_panel
        self.status_bar = status_bar
        training.startRequested.connect(self.start)
        training.newRunRequested.connect(self.forget_resume)
        training.pauseToggled.connect(self.set_paused)
        training.stopRequested.connect(self.stop)

    @Slot()
    def start(self) -> None:
        if self.run.is_running() or not self.folder_panel.folder:
            return
        options = self.training.options()
        if not self.run.start(self.folder_panel.folder, options):
            return
        warning = engine_calls.device_warning(options["device"])
        if warning:  # the engine logs it too (a WarningEvent); the status bar says it at once
            self.status_bar.showMessage(warning, 15000)

    @Slot(bool)
    def set_paused(self, paused: bool) -> None:
        self.run.set_paused(paused)
        self.training.show_paused(paused and self.run.is_running())

    @Slot()
    def stop(self) -> None:
        if self.run.is_running():
            self.run.stop()
            self.training.stop_button.setEnabled(False)

    @Slot()
    def forget_resume(self) -> None:
        self.run.forget_resume()
        self.resumeForgotten.emit()
