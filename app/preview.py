"""Live preview of generated layers: background, foreground, mask, composite per latent code.

Preview events may arrive faster than a screen needs; the widget only stores the latest one (and a
bounded history) in a slot, and a QTimer paints it when something changed (acconeer's pattern).
"""

from __future__ import annotations

from collections import deque

import numpy as np
from PySide6.QtCore import QRect, QSize, Qt, QTimer, Slot
from PySide6.QtGui import QColor, QImage, QPainter, QPixmap
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from app.run_history import SavedPreview
from app.workers import rgb_to_qimage
from engine.events import Preview

ROWS = ("background", "foreground", "mask", "composite")
GAP = 2
HISTORY = 60


def mosaic(p: Preview, max_codes: int = 8) -> np.ndarray:
    """One uint8 RGB image: a row per layer, a column per latent code, thin gaps between."""
    n = min(max_codes, p.composite.shape[0])
    h, w = p.composite.shape[1:3]
    out = np.full((4 * h + 3 * GAP, n * w + (n - 1) * GAP, 3), 40, np.uint8)
    mask_rgb = np.repeat(p.mask[..., None], 3, axis=-1)
    for r, layer in enumerate((p.background, p.foreground, mask_rgb, p.composite)):
        for c in range(n):
            y, x = r * (h + GAP), c * (w + GAP)
            out[y : y + h, x : x + w] = layer[c]
    return out


class ScaledImage(QWidget):
    """Paints one pixmap scaled to fit (nearest-neighbour: tiny previews stay crisp)."""

    def __init__(self, parent: QWidget | None = None,
                 placeholder: str = "Generated layers appear here while the GAN trains (the "
                                     "GrabCut prior and the segmenter stages make none)") -> None:
        super().__init__(parent)
        self.placeholder = placeholder
        self._pixmap: QPixmap | None = None
        self._row_labels: tuple[str, ...] = ()
        self.setMinimumSize(200, 160)

    def set_image(self, image: QImage | None, row_labels: tuple[str, ...] = ()) -> None:
        self._pixmap = (QPixmap.fromImage(image) if image is not None and not image.isNull()
                        else None)
        self._row_labels = row_labels
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(640, 360)

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#202020"))
        if self._pixmap is None:
            p.setPen(QColor("#909090"))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                       self.placeholder)
            return
        label_w = 86 if self._row_labels else 0
        area = self.rect().adjusted(label_w, 4, -4, -4)
        scaled = self._pixmap.size().scaled(area.size(), Qt.AspectRatioMode.KeepAspectRatio)
        x = area.x() + (area.width() - scaled.width()) // 2
        y = area.y() + (area.height() - scaled.height()) // 2
        target = QRect(x, y, scaled.width(), scaled.height())
        p.drawPixmap(target, self._pixmap)
        if self._row_labels:
            p.setPen(QColor("#d0d0d0"))
            n = len(self._row_labels)
            for i, text in enumerate(self._row_labels):
                top = y + i * scaled.height() // n
                rect = QRect(0, top, x - 6, scaled.height() // n)
                p.drawText(rect, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, text)


class PreviewPanel(QWidget):
    """The triplet grid, with a history slider to look back at earlier previews."""

    def __init__(self, parent: QWidget | None = None, redraw_ms: int = 80) -> None:
        super().__init__(parent)
        self.history: deque[Preview | SavedPreview] = deque(maxlen=HISTORY)
        self.redraws = 0
        self._dirty = False
        self.image = ScaledImage()
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.setToolTip(f"Look back at earlier previews (the last {HISTORY} are kept)")
        self.slider.valueChanged.connect(self._on_slider)
        self.follow = QCheckBox("Live")
        self.follow.setChecked(True)
        self.follow.setToolTip("Show each new preview as it arrives")
        self.follow.toggled.connect(self._on_follow)
        self.caption = QLabel("No preview yet")
        bar = QHBoxLayout()
        bar.addWidget(self.follow)
        bar.addWidget(self.slider, 1)
        bar.addWidget(self.caption)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.image, 1)
        layout.addLayout(bar)
        self.timer = QTimer(self)
        self.timer.setInterval(redraw_ms)
        self.timer.timeout.connect(self._redraw)
        self.timer.start()

    def clear(self) -> None:
        self.history.clear()
        self.slider.setRange(0, 0)
        self.caption.setText("No preview yet")
        self.image.set_image(None)

    @Slot(object)
    def on_event(self, ev: object) -> None:
        if isinstance(ev, Preview):
            self.add(ev)

    @Slot(object)
    def add(self, preview: Preview | SavedPreview) -> None:
        """Store only; drawing happens on the timer."""
        self.history.append(preview)
        self.slider.blockSignals(True)
        self.slider.setRange(0, len(self.history) - 1)
        if self.follow.isChecked():
            self.slider.setValue(len(self.history) - 1)
        elif self.history.maxlen == len(self.history):
            # the oldest fell off the front: keep showing the same preview
            self.slider.setValue(max(0, self.slider.value() - 1))
        self.slider.blockSignals(False)
        self._dirty = True

    def shown(self) -> Preview | SavedPreview | None:
        if not self.history:
            return None
        return self.history[min(self.slider.value(), len(self.history) - 1)]

    def _on_slider(self, value: int) -> None:
        if value < len(self.history) - 1 and self.follow.isChecked():
            self.follow.blockSignals(True)
            self.follow.setChecked(False)
            self.follow.blockSignals(False)
        self._dirty = True

    def _on_follow(self, on: bool) -> None:
        if on and self.history:
            self.slider.setValue(len(self.history) - 1)
        self._dirty = True

    @Slot()
    def _redraw(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        p = self.shown()
        if p is None:
            return
        if isinstance(p, SavedPreview):  # an opened run's grid, as the trainer wrote it
            self.image.set_image(QImage(p.path), ROWS)
            self.caption.setText(f"step {p.step} · saved preview")
        else:
            self.image.set_image(rgb_to_qimage(mosaic(p)), ROWS)
            self.caption.setText(f"step {p.step} · coverage {p.coverage:.2f}")
        self.redraws += 1
