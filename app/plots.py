"""Loss and mask-coverage curves: numpy buffers that grow by doubling, drawn on a timer.

Each kind of stage (GrabCut prior, GAN, segmenter) gets its own loss plot, on a tab that comes
forward when that stage starts, with its legend beside the plot, not on it: on one shared plot
the 12 series of a run covered each other and the legend hid half the curves. All plots use one x
axis of steps in the order the stages ran, because each stage counts its own steps from where it
started (the segmenter's fit restarts at the GAN step).
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtWidgets import (
    QGraphicsItem,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QTabWidget,
    QWidget,
)

from engine.events import Losses, Preview

COLOURS = ("#4e9af1", "#f1a54e", "#5fd068", "#e0587a", "#b48ef0", "#e8e05a", "#6ad8d8", "#cccccc")
GROUPS = ("GrabCut prior", "GAN", "segmenter")
LEGEND_WIDTH = 96  # px beside each loss plot: room for a loss name ("d_fake", "l_mask") at 8 pt


def stage_group(phase: str) -> str:
    """Which loss plot a stage's losses go to."""
    if phase.startswith("bootstrap"):
        return "GrabCut prior"
    if "segmenter" in phase or "encoder" in phase:
        return "segmenter"
    return "GAN"


def cache_static_parts(plot: pg.PlotItem, legend: pg.LegendItem) -> None:
    """Paint the axes and the legend from a pixmap unless they changed. A new loss point
    repaints the whole plot, and replaying the axes' tick text was over half of the GUI thread's
    time per update (bench/RESULTS.md, "GUI latency ... session 3")."""
    for name in ("left", "bottom"):
        plot.getAxis(name).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
    legend.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)


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


class StageAxis:
    """Maps (stage, step) to one x axis on which the stages follow each other in run order."""

    def __init__(self) -> None:
        self.offsets: dict[str, float] = {}
        self.end = 0.0
        self.current: str | None = None

    def x(self, phase: str, step: int) -> float:
        offset = self.offsets.get(phase)
        if offset is None:
            offset = self.offsets[phase] = self.end - step + (1 if self.end else 0)
        self.current = phase
        x = step + offset
        self.end = max(self.end, x)
        return x


class MetricsPlots(QWidget):
    """Loss plots per kind of stage (a tab shown once the stage reports) and the mean mask
    coverage, all on the run's step axis.

    The plots are built with the window: built when a stage first reported, pyqtgraph's setup and
    first paint held the GUI thread for ~100 ms mid-run (bench/gui_latency.py). When a kind of
    stage first reports, its tab is shown in one redraw tick and its curves (with their legend
    entries) are built one per tick after it: all in one tick, that was a run's worst gap
    (186-320 ms at load 6-7; bench/RESULTS.md "GUI latency ... session 3").
    """

    def __init__(self, parent: QWidget | None = None, redraw_ms: int = 100) -> None:
        super().__init__(parent)
        pg.setConfigOptions(antialias=False)
        self.loss_tabs = QTabWidget()
        self.loss_tabs.setDocumentMode(True)
        self.loss_tabs.setToolTip("Losses of each kind of stage; the step axis runs through the "
                                  "stages in the order they ran")
        self._placeholder = QLabel("Losses of each stage appear here while training")
        self._placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._placeholder.setStyleSheet("background: #000000; color: #909090")
        self.loss_tabs.addTab(self._placeholder, "Losses")
        self.cov_plot = pg.PlotWidget(title="Mean mask coverage")
        self.cov_plot.setYRange(0, 1, padding=0.02)
        self.cov_plot.enableAutoRange(axis="y", enable=False)
        self.cov_plot.setMouseEnabled(y=False)
        self.cov_plot.showGrid(x=True, y=True, alpha=0.2)
        self.cov_plot.setLabel("bottom", "step (stages in order)")
        self.cov_legend = pg.LegendItem(labelTextSize="8pt", brush=pg.mkBrush(0, 0, 0, 170))
        self.cov_legend.setParentItem(self.cov_plot.getPlotItem().vb)
        self.cov_legend.anchor((0, 0), (0, 0), offset=(4, 2))
        cache_static_parts(self.cov_plot.getPlotItem(), self.cov_legend)
        self.axis = StageAxis()
        self.losses: dict[str, Series] = {}  # "name" for the GAN, "stage group:name" otherwise
        self.coverage = Series()  # training batches (the method reports it with its losses)
        self.preview_coverage = Series()  # the EMA generator on the fixed preview codes
        self.loss_plots: dict[str, pg.PlotItem] = {}  # the kinds of stage that reported
        self._plots: dict[str, pg.PlotItem] = {}
        self._legends: dict[str, pg.LegendItem] = {}
        self._pages: dict[str, QWidget] = {}
        for group in GROUPS:
            self._build_page(group)
        self._running_group: str | None = None  # the kind of stage reporting now
        self._curves: dict[str, pg.PlotDataItem] = {}
        self._last_phase: dict[str, str] = {}  # series key -> the stage it last came from
        self._cov_curve = self.cov_plot.plot(pen=pg.mkPen("#5fd068", width=1.5))
        self._preview_cov_curve = self.cov_plot.plot(
            pen=pg.mkPen("#f1a54e", width=2), symbol="o", symbolSize=5, symbolBrush="#f1a54e")
        self.cov_legend.addItem(self._cov_curve, "training batch")
        self.cov_legend.addItem(self._preview_cov_curve, "preview (EMA)")
        self._dirty = False
        self._follow = False
        self.redraws = 0
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.loss_tabs, 3)
        layout.addWidget(self.cov_plot, 2)
        self.timer = QTimer(self)
        self.timer.setInterval(redraw_ms)
        self.timer.timeout.connect(self._redraw)
        self.timer.start()

    def clear(self) -> None:
        for group in GROUPS:
            self._plots[group].clear()
            self._legends[group].clear()
            self.loss_tabs.setTabVisible(self.loss_tabs.indexOf(self._pages[group]), False)
        self.loss_tabs.setTabVisible(self.loss_tabs.indexOf(self._placeholder), True)
        self.loss_tabs.setCurrentWidget(self._placeholder)
        self.loss_plots.clear()
        self._curves.clear()
        self.losses.clear()
        self._last_phase.clear()
        self._running_group = None
        self.axis = StageAxis()
        self.coverage = Series()
        self.preview_coverage = Series()
        self._cov_curve.setData([], [])
        self._preview_cov_curve.setData([], [])

    @Slot(object)
    def on_event(self, ev: object) -> None:
        if isinstance(ev, Losses):
            self.add_losses(ev.step, ev.values, ev.phase)
        elif isinstance(ev, Preview):
            self.add_preview_coverage(ev.step, ev.coverage)

    def add_losses(self, step: int, values: dict[str, float], phase: str = "gan") -> None:
        x = self.axis.x(phase or "gan", step)
        group = stage_group(phase or "gan")
        if group != self._running_group:
            self._running_group = group
            self._follow = True  # its tab comes forward at the next redraw
        for name, value in values.items():
            if name == "coverage":
                self.coverage.append(x, value)
                continue
            key = name if group == "GAN" else f"{group}:{name}"
            series = self.losses.get(key)
            if series is None:
                series = self.losses[key] = Series()
            elif self._last_phase.get(key) != phase:
                series.append(x, math.nan)  # a break between two stages of one kind
            self._last_phase[key] = phase
            series.append(x, value)
        self._dirty = True

    def add_preview_coverage(self, step: int, coverage: float) -> None:
        phase = self.axis.current or "gan"
        self.preview_coverage.append(self.axis.x(phase, step), coverage)
        self._dirty = True

    def _build_page(self, group: str) -> None:
        page = pg.GraphicsLayoutWidget()
        plot = page.addPlot(row=0, col=0)
        plot.showGrid(x=True, y=True, alpha=0.2)
        plot.setClipToView(True)
        plot.setDownsampling(auto=True, mode="peak")
        plot.setLabel("bottom", "step (stages in order)")
        legend = pg.LegendItem(labelTextSize="8pt", verSpacing=-4)
        page.addItem(legend, row=0, col=1)
        # Its own height, at the top: stretched to the plot's height, the legend spread its rows
        # and put each name 40 px above its line sample (seen in a screenshot mid-run).
        legend.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        page.ci.layout.setAlignment(legend, Qt.AlignmentFlag.AlignTop)
        page.ci.layout.setColumnFixedWidth(1, LEGEND_WIDTH)  # a new entry never resizes the plot
        cache_static_parts(plot, legend)
        self._plots[group], self._legends[group], self._pages[group] = plot, legend, page
        index = self.loss_tabs.addTab(page, f"{group} losses")
        self.loss_tabs.setTabVisible(index, False)
        page.resize(520, 220)
        page.grab()  # laid out and painted once now, with the window, not mid-run

    def _plot_for(self, group: str) -> tuple[pg.PlotItem, pg.LegendItem]:
        if group not in self.loss_plots:
            self.loss_plots[group] = self._plots[group]
            self.loss_tabs.setTabVisible(self.loss_tabs.indexOf(self._pages[group]), True)
            self.loss_tabs.setTabVisible(self.loss_tabs.indexOf(self._placeholder), False)
        return self._plots[group], self._legends[group]

    @Slot()
    def _redraw(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        group = self._running_group
        if group in self._pages and group not in self.loss_plots:
            self._plot_for(group)  # its tab appears, in a tick of its own
            self._follow = False
            self.loss_tabs.setCurrentWidget(self._pages[group])
            self._dirty = True
            return
        built = False
        for key, series in self.losses.items():
            curve = self._curves.get(key)
            if curve is None:
                if built:  # one new curve per tick (the class docstring says why)
                    self._dirty = True
                    continue
                built = True
                group, _, name = key.rpartition(":")
                group = group or "GAN"
                plot, legend = self._plot_for(group)
                colour = COLOURS[len(plot.listDataItems()) % len(COLOURS)]
                curve = self._curves[key] = plot.plot(pen=pg.mkPen(colour, width=1.5),
                                                      connect="finite")
                legend.addItem(curve, name)
            curve.setData(*series.view(), connect="finite")
        if self._follow and self._running_group in self._pages:
            self._follow = False
            self.loss_tabs.setCurrentWidget(self._pages[self._running_group])
        self._cov_curve.setData(*self.coverage.view())
        self._preview_cov_curve.setData(*self.preview_coverage.view())
        self.redraws += 1
