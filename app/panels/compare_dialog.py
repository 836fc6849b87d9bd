"""Asking which methods to compare on the open folder, for how long, and against what."""

from __future__ import annotations

import os
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine.compare import METHODS
from engine.config import SIZES
from engine.methods.registry import SPECS

TIPS = {name: spec.summary for name, spec in SPECS.items()}
TIPS["latentdir"] += " In a comparison it reuses this comparison's perturbgan (else ilgan) run."


def default_gt(folder: str) -> str:
    """FOLDER/masks when it holds files (the demo folder's layout), else no ground truth."""
    masks = os.path.join(folder, "masks")
    return masks if os.path.isdir(masks) and any(os.scandir(masks)) else ""


class CompareDialog(QDialog):
    def __init__(self, folder: str, default_out: str, size: int,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Compare methods")
        intro = QLabel(f"Train each method on <b>{os.path.basename(folder) or folder}</b> with the "
                       "same budget and show the same photos segmented by each, beside GrabCut.")
        intro.setWordWrap(True)
        self.checks: dict[str, QCheckBox] = {}
        boxes = QHBoxLayout()
        for name in METHODS:
            box = QCheckBox(name)
            box.setChecked(True)
            box.setToolTip(TIPS.get(name, ""))
            box.toggled.connect(self._sync)
            self.checks[name] = box
            boxes.addWidget(box)
        boxes.addStretch(1)
        self.minutes = QDoubleSpinBox()
        self.minutes.setRange(0.5, 600)
        self.minutes.setDecimals(1)
        self.minutes.setValue(10)
        self.minutes.setSuffix(" min")
        self.minutes.setToolTip("Training budget for each method (the whole pipeline of that "
                                "method: prior, GAN, segmenter)")
        self.minutes.valueChanged.connect(self._sync)
        self.size = QComboBox()
        for s in SIZES:
            self.size.addItem(f"{s} px", s)
        self.size.setCurrentIndex(max(0, self.size.findData(size)))
        self.gt = QLineEdit(default_gt(folder))
        self.gt.setPlaceholderText("optional: masks (0 / 255) named like the photos")
        self.gt.setToolTip("With ground-truth masks every method is scored (IoU, mIoU, accuracy, "
                           "maxF). Without, you see the same photos segmented by each method.")
        self.out = QLineEdit(default_out)
        self.out.setMinimumWidth(380)
        self.out.setToolTip("Runs go to OUT/<method>/ and the report to OUT/report.md; a method "
                            "whose run there already has a segmenter is reused, not retrained.")
        self.total = QLabel("")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Compare")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow("Methods", boxes)
        form.addRow("Budget per method", self.minutes)
        form.addRow("Resolution", self.size)
        form.addRow("Ground truth", self._with_browse(self.gt, "Ground-truth mask folder"))
        form.addRow("Output folder", self._with_browse(self.out, "Output folder"))
        form.addRow("", self.total)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.buttons)
        self._sync()

    def _with_browse(self, edit: QLineEdit, title: str) -> QHBoxLayout:
        browse = QPushButton("Browse…")
        browse.clicked.connect(lambda: self._browse(edit, title))
        row = QHBoxLayout()
        row.addWidget(edit, 1)
        row.addWidget(browse)
        return row

    def _browse(self, edit: QLineEdit, title: str) -> None:
        folder = QFileDialog.getExistingDirectory(self, title, edit.text())
        if folder:
            edit.setText(folder)

    def _sync(self) -> None:
        n = len(self.methods())
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(n > 0)
        total = n * self.minutes.value()
        self.total.setText(f"about {total:g} minute{'' if total == 1 else 's'} of training in all"
                           if n else "choose at least one method")

    def methods(self) -> tuple[str, ...]:
        return tuple(name for name, box in self.checks.items() if box.isChecked())

    def choice(self) -> dict[str, Any]:
        return {"methods": self.methods(), "minutes": self.minutes.value(),
                "size": self.size.currentData(), "gt": self.gt.text().strip() or None,
                "out": self.out.text().strip()}
