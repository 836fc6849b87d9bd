"""Loss and mask-coverage curves: numpy buffers that grow by doubling, drawn on a timer."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer, Slot
from PySide6.QtWidgets import QHBoxLayout, QWidget

COLOURS = ("#4e9af1", "#f1a54e", "#5fd068", "#e0587a", "#b48ef0", "#e8e05a", "#6ad8d8", "#cccccc")


class Series:
    """x/y samples in preallocated arrays; appending is O(1) amortised, no Python lists."""

    def __init__(self, capacity: int = 1024) -> None:
        self.x = np.empty(capacity, np.float64)
        self.y = np.empty(capacity, np.float64)
        self.n = 0

    def append(self, x: float, y: float) -> None:
        if self.n == len(self.x):
            self.x = np.resize(self.x, 2 * self.n)
            self.y = np.resize(self.y, 2 * self.n)
        self.x[self.n] = x
        self.y[self.n] = y
        self.n += 1

    def view(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x[: self.n], self.y[: self.n]


class MetricsPlots(QWidget):
    """Two plots side by side: losses by name (one curve each) and the mean mask coverage."""

    def __init__(self, parent: QWidget | None = None, redraw_ms: int = 100) -> None:
        super().__init__(parent)
        pg.setConfigOptions(antialias=False)
        self.loss_plot = pg.PlotWidget(title="Losses")
        self.loss_plot.addLegend(offset=(4, 2), colCount=4, labelTextSize="8pt",
                                 brush=pg.mkBrush(0, 0, 0, 170))
        self.cov_plot = pg.PlotWidget(title="Mean mask coverage")
        self.cov_plot.setYRange(0, 1, padding=0.02)
        self.cov_plot.enableAutoRange(axis="y", enable=False)
        self.cov_plot.setMouseEnabled(y=False)
        for plot in (self.loss_plot, self.cov_plot):
            plot.showGrid(x=True, y=True, alpha=0.2)
            plot.setClipToView(True)
            plot.setDownsampling(auto=True, mode="peak")
            plot.setLabel("bottom", "step")
        self.cov_plot.setXLink(self.loss_plot)
        self.losses: dict[str, Series] = {}
        self.coverage = Series()  # training batches (the method reports it with its losses)
        self.preview_coverage = Series()  # the EMA generator on the fixed preview codes
        self._curves: dict[str, pg.PlotDataItem] = {}
        self.cov_plot.addLegend(offset=(4, 2), colCount=2, labelTextSize="8pt",
                                brush=pg.mkBrush(0, 0, 0, 170))
        self._cov_curve = self.cov_plot.plot(pen=pg.mkPen("#5fd068", width=1.5),
                                             name="training batch")
        self._preview_cov_curve = self.cov_plot.plot(
            pen=pg.mkPen("#f1a54e", width=2), symbol="o", symbolSize=5,
            symbolBrush="#f1a54e", name="preview (EMA)")
        self._dirty = False
        self.redraws = 0
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.loss_plot, 3)
        layout.addWidget(self.cov_plot, 2)
        self.timer = QTimer(self)
        self.timer.setInterval(redraw_ms)
        self.timer.timeout.connect(self._redraw)
        self.timer.start()

    def clear(self) -> None:
        for curve in self._curves.values():
            self.loss_plot.removeItem(curve)
        legend = self.loss_plot.plotItem.legend
        if legend is not None:
            legend.clear()
        self._curves.clear()
        self.losses.clear()
        self.coverage = Series()
        self.preview_coverage = Series()
        self._cov_curve.setData([], [])
        self._preview_cov_curve.setData([], [])

    def add_losses(self, step: int, values: dict[str, float], phase: str = "") -> None:
        for name, value in values.items():
            if name == "coverage":
                self.coverage.append(step, value)
                continue
            key = f"{phase}:{name}" if phase and phase != "gan" else name
            series = self.losses.get(key)
            if series is None:
                series = self.losses[key] = Series()
            series.append(step, value)
        self._dirty = True

    def add_preview_coverage(self, step: int, coverage: float) -> None:
        self.preview_coverage.append(step, coverage)
        self._dirty = True

    @Slot()
    def _redraw(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        for name, series in self.losses.items():
            curve = self._curves.get(name)
            if curve is None:
                pen = pg.mkPen(COLOURS[len(self._curves) % len(COLOURS)], width=1.5)
                curve = self._curves[name] = self.loss_plot.plot(pen=pen, name=name)
            curve.setData(*series.view())
        self._cov_curve.setData(*self.coverage.view())
        self._preview_cov_curve.setData(*self.preview_coverage.view())
        self.redraws += 1
