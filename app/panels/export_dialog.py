"""Asking where and how to export masks."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QWidget,
)

FORMATS = {
    "mask": "Binary mask (PNG, 0 / 255)",
    "soft": "Soft mask (PNG, 0–255 probability)",
    "cutout": "Cut-out (PNG with transparent background)",
    "coco": "COCO polygons (one coco.json for the folder)",
    "coco-rle": "COCO RLE masks (one coco-rle.json for the folder)",
    "labelme": "LabelMe / X-AnyLabeling (one JSON per photo)",
    "yolo": "YOLO segmentation (one TXT per photo)",
}


class ExportMasksDialog(QDialog):
    def __init__(self, default_out: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export masks")
        self.format = QComboBox()
        for key, text in FORMATS.items():
            self.format.addItem(text, key)
        self.refine = QCheckBox("Snap to edges (GrabCut pass from the mask; slower)")
        self.refine.setToolTip(
            "Runs one GrabCut pass per photo, started from the segmenter's mask, so the outline "
            "follows the photo's colour edges. Measured: demo IoU 0.80 -> 0.97. Output is binary."
        )
        self.out = QLineEdit(default_out)
        self.out.setMinimumWidth(360)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.out, 1)
        row.addWidget(browse)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Format", self.format)
        form.addRow("", self.refine)
        form.addRow("Output folder", row)
        form.addRow(buttons)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder", self.out.text())
        if folder:
            self.out.setText(folder)

    def choice(self) -> tuple[str, str, bool]:
        return self.format.currentData(), self.out.text().strip(), self.refine.isChecked()
