"""Where the window's pieces sit: the splitters and tabs, and the menu bar.

Pure arrangement: nothing here knows what a panel does, so moving a panel is one edit here and
none in the code that drives it.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMainWindow, QSplitter, QTabWidget, QVBoxLayout, QWidget


def build_central(window: QMainWindow, side: tuple[QWidget, QWidget], live: tuple[QWidget, QWidget],
                  tabs: tuple[tuple[QWidget, str], ...], log: QWidget) -> QTabWidget:
    """Photos and training settings on the left (``side``), the live view (preview over plots)
    and the other ``tabs`` on the right above the log. Returns the tab widget."""
    left = QWidget()
    lv = QVBoxLayout(left)
    lv.setContentsMargins(6, 6, 6, 6)
    lv.addWidget(side[0], 1)
    lv.addWidget(side[1], 0)
    live_split = QSplitter(Qt.Orientation.Vertical)
    for widget in live:
        live_split.addWidget(widget)
    live_split.setSizes([360, 260])
    tab_widget = QTabWidget()
    tab_widget.addTab(live_split, "Live training")
    for widget, title in tabs:
        tab_widget.addTab(widget, title)
    right = QSplitter(Qt.Orientation.Vertical)
    right.addWidget(tab_widget)
    right.addWidget(log)
    right.setSizes([600, 120])
    main = QSplitter(Qt.Orientation.Horizontal)
    main.addWidget(left)
    main.addWidget(right)
    main.setSizes([380, 900])
    main.setStretchFactor(1, 1)
    window.setCentralWidget(main)
    return tab_widget


def build_menus(window: QMainWindow, file_items: tuple[tuple[str, Callable[[], object], str], ...],
                compare: Callable[[], object],
                help_items: tuple[tuple[str, Callable[[], object]], ...]) -> QAction:
    """File (text, slot, shortcut), Tools ▸ Compare methods…, Help; returns the compare action,
    which the window enables only when a comparison can start."""
    menu = window.menuBar().addMenu("&File")
    for text, slot, key in file_items:
        action = QAction(text, window)
        if key:
            action.setShortcut(key)
        action.triggered.connect(slot)
        menu.addAction(action)
    compare_action = QAction("Compare methods…", window)
    compare_action.setToolTip("Train several methods on this folder with the same budget "
                              "and show their masks (and scores) side by side")
    compare_action.triggered.connect(compare)
    window.menuBar().addMenu("&Tools").addAction(compare_action)
    help_menu = window.menuBar().addMenu("&Help")
    for text, slot in help_items:
        help_menu.addAction(text, slot)
    return compare_action
