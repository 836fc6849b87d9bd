"""The folder's photos as a lazily loaded thumbnail list.

A folder can hold tens of thousands of photos, so nothing is decoded on the GUI thread: rows the
view asks to paint are queued first (high priority), and a background sweep in small chunks checks
every other file so unreadable ones are flagged with their reason even if never scrolled to.

Results reach the view in batches: ``dataChanged`` (one per run of consecutive rows) and
``checkedChanged`` go out at most once per ``FLUSH_MS``. A folder of 50,000 tiny files decodes
faster than the view can handle one ``dataChanged`` per file (~2 ms each in icon mode), and one
signal per file starved the event loop for seconds (bench/RESULTS.md, "Bad-input corpus (#9)").
"""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QPersistentModelIndex,
    QSize,
    Qt,
    QTimer,
    Signal,
    Slot,
)
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPixmap

from app.workers import ThumbnailJob, ThumbnailSignals, thumbnail_pool

THUMB_SIDE = 80
SWEEP_CHUNK = 16
MAX_CACHED = 5000  # beyond this, thumbnails are decoded again when scrolled back to
FLUSH_MS = 50  # loaded rows are announced to the view at most this often


def _placeholder(colour: str) -> QIcon:
    pix = QPixmap(THUMB_SIDE, THUMB_SIDE)
    pix.fill(QColor(colour))
    return QIcon(pix)


def _broken_icon() -> QIcon:
    pix = QPixmap(THUMB_SIDE, THUMB_SIDE)
    pix.fill(QColor("#4a2020"))
    p = QPainter(pix)
    p.setPen(QColor("#ff8080"))
    font = p.font()
    font.setPointSize(28)
    font.setBold(True)
    p.setFont(font)
    p.drawText(pix.rect(), Qt.AlignmentFlag.AlignCenter, "!")
    p.end()
    return QIcon(pix)


class ThumbnailModel(QAbstractListModel):
    """One row per image file; decoration = thumbnail, tooltip = path or the reason it is unusable."""

    checkedChanged = Signal(int, int, int)  # checked, total, unreadable

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._paths: list[str] = []
        self._icons: dict[int, QIcon] = {}
        self._bad: dict[int, str] = {}
        self._claimed = bytearray()
        self._seen = bytearray()
        self._checked = 0
        self._generation = 0
        self._cancel = threading.Event()
        self._pool = thumbnail_pool()
        self._signals = ThumbnailSignals()
        self._signals.loaded.connect(self._on_loaded)
        self._pending_icon = _placeholder("#3a3a3a")
        self._bad_icon = _broken_icon()
        self._changed: list[int] = []  # rows loaded since the last flush
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(FLUSH_MS)
        self._flush_timer.timeout.connect(self._flush)

    # -- public -------------------------------------------------------------------------------
    def set_paths(self, paths: list[Path]) -> None:
        self.shutdown()
        self.beginResetModel()
        self._generation += 1
        self._cancel = threading.Event()
        self._paths = [str(p) for p in paths]
        self._icons.clear()
        self._bad.clear()
        self._claimed = bytearray(len(self._paths))
        self._seen = bytearray(len(self._paths))
        self._checked = 0
        self._changed.clear()
        self._flush_timer.stop()
        self.endResetModel()
        self.checkedChanged.emit(0, len(self._paths), 0)
        for start in range(0, len(self._paths), SWEEP_CHUNK):
            rows = list(range(start, min(start + SWEEP_CHUNK, len(self._paths))))
            self._submit(rows, priority=0)

    def bad_files(self) -> dict[str, str]:
        return {self._paths[r]: reason for r, reason in sorted(self._bad.items())}

    def checked(self) -> int:
        return self._checked

    def path(self, row: int) -> str:
        return self._paths[row]

    def shutdown(self, wait_ms: int = 2000) -> None:
        """Cancel queued decodes and wait for the running one (called before close)."""
        self._cancel.set()
        self._pool.clear()
        self._pool.waitForDone(wait_ms)

    # -- Qt model -----------------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._paths)

    def data(self, index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = index.row()
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return Path(self._paths[row]).name  # names live in tooltips: the grid stays compact
        if role == Qt.ItemDataRole.DecorationRole:
            if row in self._bad:
                return self._bad_icon
            icon = self._icons.get(row)
            if icon is None and (not self._claimed[row] or self._seen[row]):
                self._claimed[row] = 0  # seen but evicted from the cache: decode again
                self._submit([row], priority=10)
            return icon or self._pending_icon
        if role == Qt.ItemDataRole.ToolTipRole:
            reason = self._bad.get(row)
            return f"{self._paths[row]}\nUnreadable: {reason}" if reason else self._paths[row]
        if role == Qt.ItemDataRole.ForegroundRole and row in self._bad:
            return QColor("#ff8080")
        return None

    def _submit(self, rows: list[int], priority: int) -> None:
        job = ThumbnailJob(rows, self._paths, self._claimed, THUMB_SIDE, self._generation,
                           self._signals, self._cancel)
        self._pool.start(job, priority)

    @Slot(int, int, object, str)
    def _on_loaded(self, row: int, generation: int, image: QImage | None, reason: str) -> None:
        if generation != self._generation:
            return  # a result for a folder that is no longer shown
        if not self._seen[row]:
            self._seen[row] = 1
            self._checked += 1
        if reason:
            self._bad[row] = reason
        elif image is not None:
            if len(self._icons) >= MAX_CACHED:
                self._icons.pop(next(iter(self._icons)))  # oldest first
            self._icons[row] = QIcon(QPixmap.fromImage(image))
        self._changed.append(row)
        if self._checked == len(self._paths):
            self._flush_timer.stop()
            self._flush()  # the last file: the final count shows at once
        elif not self._flush_timer.isActive():
            self._flush_timer.start()

    @Slot()
    def _flush(self) -> None:
        rows = sorted(set(self._changed))
        self._changed.clear()
        start = 0
        for k in range(1, len(rows) + 1):
            if k == len(rows) or rows[k] != rows[k - 1] + 1:  # end of a run of consecutive rows
                self.dataChanged.emit(self.index(rows[start]), self.index(rows[k - 1]),
                                      [Qt.ItemDataRole.DecorationRole])
                start = k
        self.checkedChanged.emit(self._checked, len(self._paths), len(self._bad))

    def icon_size(self) -> QSize:
        return QSize(THUMB_SIDE, THUMB_SIDE)
