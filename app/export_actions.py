"""The user's side of exports: asking where to write (ONNX file, masks folder and format) and
handing the job to the ExportController, with the Results tab brought forward to show it."""

from __future__ import annotations

import os

from PySide6.QtCore import QObject, Slot
from PySide6.QtWidgets import QTabWidget, QWidget

from app import engine_calls
from app.controllers.exports import ExportController
from app.controllers.training import TrainingController
from app.dialogs import Prompter
from app.panels.export_dialog import ExportMasksDialog
from app.panels.folder import FolderPanel
from app.panels.results import ResultsPanel


def default_masks_dir(folder: str) -> str:
    """Masks go next to the photos, where the user will look: ``<folder>-masks``."""
    folder = folder.rstrip(os.sep) or folder
    return f"{folder}-masks"


class ExportActions(QObject):
    """Exports of the current run (``run.run_dir``) for the open folder (``folder_panel``); the
    results panel asks for them and shows their progress."""

    def __init__(self, exports: ExportController, run: TrainingController,
                 folder_panel: FolderPanel, prompter: Prompter, tabs: QTabWidget,
                 results: ResultsPanel, window: QWidget) -> None:
        super().__init__(window)
        self.exports, self.run, self.folder_panel = exports, run, folder_panel
        self.prompter, self.tabs, self.results, self.window = prompter, tabs, results, window
        self.dialog_box: ExportMasksDialog | None = None  # the last masks dialog (tests read it)
        results.exportOnnxRequested.connect(self.onnx_dialog)
        results.exportMasksRequested.connect(self.masks_dialog)
        results.cancelExportRequested.connect(exports.cancel)
        exports.started.connect(results.export_started)
        exports.progress.connect(results.export_progress)
        exports.ended.connect(results.export_ended)

    @Slot()
    def onnx_dialog(self) -> None:
        run_dir = self.run.run_dir
        if not run_dir:
            return
        default = os.path.join(run_dir, "segmenter.onnx")
        out = self.prompter.save_file(self.window, "Export ONNX model", default,
                                      "ONNX model (*.onnx)")
        if out:
            self.export_onnx(out)

    def export_onnx(self, out: str) -> None:
        self.tabs.setCurrentWidget(self.results)
        self.exports.start(engine_calls.onnx_job(self.run.run_dir, out), "ONNX export")

    @Slot()
    def masks_dialog(self) -> ExportMasksDialog | None:
        """Ask for format and folder (window-modal, not blocking); OK starts the export."""
        folder = self.folder_panel.folder
        if not self.run.run_dir or not folder:
            return None
        dialog = ExportMasksDialog(default_masks_dir(folder), self.window)

        def accepted() -> None:
            fmt, out_dir, refine = dialog.choice()
            self.export_masks(out_dir, fmt, refine)

        dialog.accepted.connect(accepted)
        dialog.finished.connect(dialog.deleteLater)
        self.dialog_box = dialog
        dialog.open()
        return dialog

    def export_masks(self, out_dir: str, fmt: str = "mask", refine: bool = False) -> None:
        job = engine_calls.masks_job(self.run.run_dir, self.folder_panel.folder, out_dir, fmt,
                                     refine)
        self.tabs.setCurrentWidget(self.results)
        self.exports.start(job, "Mask export")
