"""The window's background jobs started from menus and buttons: ONNX export, mask export and the
method comparison. A mixin of MainWindow (kept apart so window.py stays about the run itself)."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Slot

from app import engine_calls
from app.panels.compare_dialog import CompareDialog
from app.panels.export_dialog import ExportMasksDialog
from app.run_session import gui_torch_threads

if TYPE_CHECKING:
    from app.window import MainWindow

    _Base = MainWindow
else:
    _Base = object


class WindowJobs(_Base):
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
        self.results.start_export(engine_calls.onnx_job(self.run_dir, out), "ONNX export")

    @Slot()
    def export_masks_dialog(self) -> None:
        if not self.run_dir or not self.folder_panel.folder:
            return
        dialog = ExportMasksDialog(os.path.join(self.run_dir, "masks"), self)
        if dialog.exec():
            fmt, out_dir, refine = dialog.choice()
            self.export_masks(out_dir, fmt, refine)

    def export_masks(self, out_dir: str, fmt: str = "mask", refine: bool = False) -> None:
        job = engine_calls.masks_job(self.run_dir, self.folder_panel.folder, out_dir, fmt, refine)
        self.tabs.setCurrentWidget(self.results)
        self.results.start_export(job, "Mask export")

    # -- method comparison ---------------------------------------------------------------------
    @Slot()
    def compare_dialog(self) -> CompareDialog | None:
        """Ask what to compare (window-modal, not blocking); Compare starts it."""
        folder = self.folder_panel.folder
        if not folder or self.compare.is_running():
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
        if not folder or self.compare.is_running():
            return False
        if self.session is not None:
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
        self.compare.start(config, gui_torch_threads())
        return True

    @Slot(bool)
    def _compare_running(self, running: bool) -> None:
        self._sync_start()
