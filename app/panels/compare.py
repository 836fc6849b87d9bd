"""The method comparison of the open folder: progress while it runs, then the report.

The comparison (``engine.compare.run_compare``: train or reuse each method, segment, score beside
GrabCut) runs as one JobRunner job; Cancel stops the method training at its next step (with a
checkpoint, so comparing again into the same folder resumes it). The report is what the engine
wrote: ``report.png`` (the same photos segmented by each method) and ``report.json`` (the table).
"""

from __future__ import annotations

import os
import time
from typing import Any

from PySide6.QtCore import QRect, Qt, Signal, Slot
from PySide6.QtGui import QColor, QImage, QPainter, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app import engine_calls
from app.preview import PreviewPanel
from engine.describe import clock

SCORES = (("iou", "IoU"), ("miou", "mIoU"), ("accuracy", "accuracy"), ("max_fbeta", "maxF"))
NO_COMPARISON = ("No comparison yet: Tools ▸ Compare methods… trains several methods on the open "
                 "folder with the same budget and shows their masks side by side (and their "
                 "scores, given ground-truth masks).")
COLUMNS = ("method", *(title for _, title in SCORES), "train time", "status", "notes")


class FigureView(QWidget):
    """The report figure scaled to fit, smoothly (it holds text and thin outlines)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.pixmap: QPixmap | None = None
        self.placeholder = "Compare methods… (Tools menu) trains each method on this folder"
        self.setMinimumSize(240, 160)

    def set_image(self, image: QImage | None) -> None:
        self.pixmap = QPixmap.fromImage(image) if image is not None and not image.isNull() else None
        self.update()

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#ffffff" if self.pixmap is not None else "#202020"))
        if self.pixmap is None:
            p.setPen(QColor("#909090"))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.placeholder)
            return
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        area = self.rect().adjusted(4, 4, -4, -4)
        # Scaled to the panel both ways: the report is drawn small (~270 px) and its text and
        # outlines were unreadable in an 850 px panel.
        size = self.pixmap.size().scaled(area.size(), Qt.AspectRatioMode.KeepAspectRatio)
        x = area.x() + (area.width() - size.width()) // 2
        y = area.y() + (area.height() - size.height()) // 2
        p.drawPixmap(QRect(x, y, size.width(), size.height()), self.pixmap)


def _train_time(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


class ComparePanel(QWidget):
    openFolderRequested = Signal(str)
    cancelRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.running = False
        self.started_at = 0.0
        self.budget_s: float | None = None
        self.out_dir: str | None = None
        self.report: dict[str, Any] | None = None
        self.outcome: engine_calls.CompareOutcome | None = None

        self.title = QLabel(NO_COMPARISON)
        self.title.setWordWrap(True)
        self.figure = FigureView()
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        # While a method trains, its previews stand where the report will be (issue #17 item 9).
        self.preview = PreviewPanel()
        self.preview.setVisible(False)
        split = self.split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.figure)
        split.addWidget(self.preview)
        split.addWidget(self.table)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 0)
        split.setSizes([430, 170])

        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the method training now at its next step (a "
                                      "checkpoint is kept: comparing into the same folder "
                                      "resumes it)")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self._cancel_clicked)
        self.open_button = QPushButton("Open report folder")
        self.open_button.setToolTip("The runs of every method, report.md, report.json and "
                                    "report.png")
        self.open_button.setEnabled(False)
        self.open_button.clicked.connect(self._open_folder)
        bar = QHBoxLayout()
        bar.addWidget(self.progress, 1)
        bar.addWidget(self.cancel_button)
        bar.addWidget(self.open_button)

        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(split, 1)
        layout.addWidget(self.status)
        layout.addLayout(bar)

    def is_running(self) -> bool:
        return self.running

    # -- a comparison running (CompareController) ----------------------------------------------
    @Slot(object)
    def show_started(self, config: Any) -> None:
        """A comparison of ``config`` (an engine CompareConfig) has started."""
        self.running = True
        self.out_dir = str(config.out)
        self.report = self.outcome = None
        self.started_at = time.monotonic()
        self.budget_s = (config.minutes * 60 * len(config.methods)) if config.minutes else None
        self.figure.set_image(None)
        self.figure.placeholder = "The report appears here when every method is done"
        self._show_training(True)
        self.table.setRowCount(0)
        self.title.setText(f"Comparing {', '.join(config.methods)} on {config.folder} "
                           f"→ {self.out_dir}")
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.cancel_button.setVisible(True)
        self.cancel_button.setEnabled(True)
        self.open_button.setEnabled(False)

    @Slot()
    def _cancel_clicked(self) -> None:
        self.cancel_button.setEnabled(False)
        self.status.setText("Cancelling: the method in training stops at its next step…")
        self.cancelRequested.emit()

    @Slot(int, int)
    def show_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(0, total))
        self.progress.setValue(done)
        if self.budget_s and total:
            left = max(0.0, self.budget_s - (time.monotonic() - self.started_at))
            self.progress.setFormat(f"%p% · about {clock(left)} of training left")

    @Slot(str, str)
    def show_note(self, text: str, level: str) -> None:
        self.status.setText(text)

    @Slot(object)
    def show_preview(self, preview: Any) -> None:
        """The method in training's latest preview: stored, drawn on the panel's timer."""
        self.preview.add(preview)

    def _show_training(self, training: bool) -> None:
        """The previews while methods train, the report figure otherwise."""
        if training:
            self.preview.clear()
        self.preview.setVisible(training)
        self.figure.setVisible(not training)

    @Slot(object)
    def show_outcome(self, outcome: engine_calls.CompareOutcome) -> None:
        self.outcome = outcome
        if outcome.report is None:
            self.status.setText("Cancelled; finished runs are kept and reused next time.")
            self.title.setText(f"Comparison cancelled ({outcome.out_dir})")
            self.open_button.setEnabled(os.path.isdir(outcome.out_dir))
            return
        self.show_report(outcome.out_dir, outcome.report)

    @Slot(str, str, str)
    def show_failure(self, title: str, message: str, details: str) -> None:
        self.status.setText(f"Failed: {message}")

    @Slot(bool)
    def show_running(self, running: bool) -> None:
        self.running = running
        if not running:
            self.progress.setVisible(False)
            self.progress.setFormat("%p%")
            self.cancel_button.setVisible(False)

    def clear(self) -> None:
        """No comparison shown (another photo folder was chosen)."""
        self.out_dir = self.report = self.outcome = None
        self._show_training(False)
        self.figure.set_image(None)
        self.figure.placeholder = "Compare methods… (Tools menu) trains each method on this folder"
        self.table.setRowCount(0)
        self.title.setText(NO_COMPARISON)
        self.status.setText("")
        self.open_button.setEnabled(False)

    # -- the report ----------------------------------------------------------------------------
    def show_report(self, out_dir: str, report: dict[str, Any] | None = None) -> None:
        """Show OUT/report.png and the table of OUT/report.json (read when not given)."""
        report = report if report is not None else engine_calls.read_compare_report(out_dir)
        self.out_dir, self.report = out_dir, report
        self._show_training(False)
        scored = bool(report.get("gt"))
        budget = report.get("budget", {})
        spent = (f"{budget['minutes_per_method']:g} min per method"
                 if budget.get("minutes_per_method") else f"{budget.get('steps_per_method')} steps")
        truth = (f"scored on {report.get('images')} photos with ground truth" if scored
                 else "no ground truth: compare the masks by eye")
        self.title.setText(f"{os.path.basename(str(report.get('folder', '')))}: {spent}, "
                           f"{report.get('size')} px, {report.get('device')}; {truth}. "
                           f"Report: {os.path.join(out_dir, 'report.md')}")
        self.figure.set_image(QImage(os.path.join(out_dir, "report.png")))
        rows = report["rows"]
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            scores = row.get("scores", {})
            cells = [row["method"],
                     *(f"{scores[k]:.3f}" if k in scores else "—" for k, _ in SCORES),
                     _train_time(row.get("train_s")), row.get("status", ""), row.get("note", "")]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if 1 <= c <= len(SCORES):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
        for c in range(1, len(SCORES) + 1):
            self.table.setColumnHidden(c, not scored)
        # Every row visible without scrolling; the figure takes the rest of the height.
        rows_h = sum(self.table.rowHeight(r) for r in range(len(rows)))
        table_h = self.table.horizontalHeader().height() + rows_h + 2 * self.table.frameWidth() + 2
        self.table.setMinimumHeight(table_h)
        total = sum(self.split.sizes())
        if total > table_h:  # the figure gets every pixel the table does not need
            self.split.setSizes([total - table_h, table_h])
        self.status.setText("")
        self.open_button.setEnabled(True)

    def method_rows(self) -> list[str]:
        return [self.table.item(r, 0).text() for r in range(self.table.rowCount())]

    @Slot()
    def _open_folder(self) -> None:
        if self.out_dir:
            self.openFolderRequested.emit(self.out_dir)
