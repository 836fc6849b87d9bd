"""Results: the segmenter's masks over the user's own photos, and the exports.

Inference and exports run in worker threads (JobRunner); only one inference is in flight, and a
newer request replaces a waiting one, so paging quickly through photos never queues up work.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from app.overlay import Prediction, Predictor, overlay
from app.preview import ScaledImage
from app.workers import JobRunner, rgb_to_qimage

PLACEHOLDER = "Masks of your photos appear here once a segmenter is trained (or a run is opened)"

SEGMENTER_FILE = "segmenter.pt"


class ResultsPanel(QWidget):
    message = Signal(str, str)  # text, level
    failed = Signal(str, str, str)  # title, message, details
    openFolderRequested = Signal(str)
    exportMasksRequested = Signal()
    exportOnnxRequested = Signal()
    cancelExportRequested = Signal()
    photoShown = Signal(int)  # index into ``photos`` of the photo now shown

    def __init__(self, jobs: JobRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.jobs = jobs
        self.run_dir: str | None = None
        self.photos: list[str] = []
        self.index = 0
        self.predictor: Predictor | None = None
        self.current: Prediction | None = None
        self._busy = False
        self._wanted: int | None = None
        self.exporting = False

        self.title = QLabel("No segmenter yet: train one, or open a run folder (File ▸ Open run).")
        self.title.setWordWrap(True)
        self.image = ScaledImage(placeholder=PLACEHOLDER)
        self.prev_button = QPushButton("◀ Previous")
        self.next_button = QPushButton("Next ▶")
        self.prev_button.clicked.connect(lambda: self.show_photo(self.index - 1))
        self.next_button.clicked.connect(lambda: self.show_photo(self.index + 1))
        self.where = QLabel("")
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(55)
        self.opacity.setMaximumWidth(160)
        self.opacity.setToolTip("Mask opacity over the photo")
        self.opacity.valueChanged.connect(self._render)
        nav = QHBoxLayout()
        nav.addWidget(self.prev_button)
        nav.addWidget(self.next_button)
        nav.addWidget(self.where, 1)
        nav.addWidget(QLabel("Mask opacity"))
        nav.addWidget(self.opacity)

        self.onnx_button = QPushButton("Export ONNX…")
        self.onnx_button.setToolTip("Write the segmenter as one .onnx file (checked against torch)")
        self.masks_button = QPushButton("Export masks…")
        self.masks_button.setToolTip("Segment every photo of a folder with onnxruntime")
        self.onnx_button.clicked.connect(self.exportOnnxRequested)
        self.masks_button.clicked.connect(self.exportMasksRequested)
        self.job_progress = QProgressBar()
        self.job_progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self._cancel_clicked)
        exports = QHBoxLayout()
        exports.addWidget(self.onnx_button)
        exports.addWidget(self.masks_button)
        exports.addWidget(self.job_progress, 1)
        exports.addWidget(self.cancel_button)
        exports.addStretch(0)

        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.image, 1)
        layout.addLayout(nav)
        layout.addLayout(exports)
        self._sync()

    # -- state ---------------------------------------------------------------------------------
    def segmenter_path(self) -> str | None:
        if self.run_dir is None:
            return None
        path = os.path.join(self.run_dir, SEGMENTER_FILE)
        return path if os.path.isfile(path) else None

    def set_run(self, run_dir: str | None, photos: list[str]) -> None:
        """Point the viewer at a run (its segmenter) and the photos to show it on."""
        if run_dir != self.run_dir or photos != self.photos:
            self.index = 0  # another run or folder: its first photo, not the old one's index
        self.run_dir = run_dir
        self.photos = photos
        self.current = None
        path = self.segmenter_path()
        self.predictor = Predictor(path) if path else None
        if path:
            self.title.setText(f"Segmenter: {path}")
            self.show_photo(min(self.index, max(0, len(photos) - 1)))
        else:
            self.title.setText("No segmenter yet: it is trained after the GAN stage "
                               "(or open a finished run folder)." if run_dir else
                               "No run: train one, or open a run folder (File ▸ Open run).")
            self.image.set_image(None)
        self._sync()

    def _sync(self) -> None:
        has_model = self.predictor is not None
        exporting = self.exporting
        self.prev_button.setEnabled(has_model and self.index > 0)
        self.next_button.setEnabled(has_model and self.index < len(self.photos) - 1)
        self.onnx_button.setEnabled(has_model and not exporting)
        self.masks_button.setEnabled(has_model and not exporting)

    # -- viewer --------------------------------------------------------------------------------
    def show_photo(self, index: int) -> None:
        if self.predictor is None or not self.photos:
            return
        self.index = max(0, min(index, len(self.photos) - 1))
        self.photoShown.emit(self.index)
        self.where.setText(f"{self.index + 1} / {len(self.photos)} · "
                           f"{Path(self.photos[self.index]).name} · segmenting…")
        self._sync()
        if self._busy:
            self._wanted = self.index  # replaces any older waiting request
            return
        self._busy = True
        predictor, path = self.predictor, self.photos[self.index]
        self.jobs.start(lambda _p, _c: predictor.predict(path), "peel-infer",
                        on_result=self._on_prediction, on_error=self._on_infer_error,
                        on_done=self._on_infer_done)

    @Slot(object)
    def _on_prediction(self, pred: Prediction) -> None:
        self.current = pred
        self._render()

    @Slot(str, str)
    def _on_infer_error(self, message: str, details: str) -> None:
        self.where.setText(f"{self.index + 1} / {len(self.photos)} · {message}")
        self.message.emit(f"Viewer: {message}", "warning")

    @Slot()
    def _on_infer_done(self) -> None:
        self._busy = False
        if self._wanted is not None:
            wanted, self._wanted = self._wanted, None
            self.show_photo(wanted)

    @Slot()
    def _render(self) -> None:
        pred = self.current
        if pred is None:
            return
        self.image.set_image(rgb_to_qimage(overlay(pred.rgb, pred.mask, self.opacity.value() / 100)))
        i = self.photos.index(pred.path) if pred.path in self.photos else self.index
        self.where.setText(f"{i + 1} / {len(self.photos)} · {Path(pred.path).name} · "
                           f"object covers {pred.coverage:.0%}")

    # -- exports (run by the ExportController; shown here) -----------------------------------
    @Slot(str)
    def export_started(self, label: str) -> None:
        self.exporting = True
        self.job_progress.setVisible(True)
        self.job_progress.setRange(0, 0)
        self.job_progress.setFormat(f"{label} %v/%m")
        self.cancel_button.setVisible(True)
        self.cancel_button.setEnabled(True)
        self._sync()

    @Slot(int, int)
    def export_progress(self, done: int, total: int) -> None:
        self.job_progress.setRange(0, max(1, total))
        self.job_progress.setValue(done)

    @Slot()
    def export_ended(self) -> None:
        self.exporting = False
        self.job_progress.setVisible(False)
        self.cancel_button.setVisible(False)
        self._sync()

    @Slot()
    def _cancel_clicked(self) -> None:
        self.cancel_button.setEnabled(False)
        self.cancelExportRequested.emit()
