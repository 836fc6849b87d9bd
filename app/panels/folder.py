"""Choosing the photo folder: dialog, drag and drop, recent folders; a thumbnail view with counts.

A big folder is listed in a worker thread (``app.folder_scan``): listing 50,000 files on the GUI
thread froze the window for 2-13 s on the shared test machine. A small folder (at most
``LIST_AT_ONCE`` entries) is still listed at once, which costs milliseconds and keeps
``show_folder`` -> count -> Start enabled in one step for the common case.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal, Slot
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListView,
    QMenu,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.folder_scan import FolderListing, FolderScanner
from app.panels.thumbnails import ThumbnailModel
from engine.imageio import scan_images

LIST_AT_ONCE = 1000  # folders with at most this many entries are listed on the GUI thread


def _at_most(folder: str, limit: int) -> bool:
    """True when ``folder`` holds at most ``limit`` entries; reads no more than limit + 1 of them.

    Raises OSError like ``scan_images`` (no permission, not a folder), so those errors still reach
    the caller at once. Reading 1,001 entries of a 50,000-entry folder takes about a millisecond.
    """
    with os.scandir(folder) as it:
        return sum(1 for _ in itertools.islice(it, limit + 1)) <= limit


def dropped_folder(event: QDragEnterEvent | QDropEvent) -> str | None:
    """The folder a drag carries (a dropped file means its folder), or None."""
    urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
    for url in urls:
        if url.isLocalFile():
            path = Path(url.toLocalFile())
            return str(path if path.is_dir() else path.parent)
    return None


class FolderPanel(QWidget):
    """Shows one folder. Emits ``chooseRequested`` / ``folderRequested(path)``; the window decides.

    ``scanned`` goes out whenever a folder's listing has been shown (``image_count`` is then
    final), ``message(text, level)`` says what was found or why the folder could not be listed.
    """

    chooseRequested = Signal()
    folderRequested = Signal(str)
    scanned = Signal()
    message = Signal(str, str)  # text, level
    photoChosen = Signal(int)  # row of the thumbnail the user clicked
    countsChanged = Signal()  # checked / unreadable counts moved

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.folder: str | None = None
        self.image_count = 0
        self.scanning = False  # a listing runs in the background; image_count is 0 until it ends
        self.model = ThumbnailModel(self)
        self.scanner = FolderScanner(self)
        self.scanner.listed.connect(self._on_listed)
        self.setAcceptDrops(True)

        self.path_label = QLabel("Drop a folder of photos here, or choose one.")
        self.path_label.setWordWrap(True)
        self.path_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        choose = QPushButton("Choose folder…")
        choose.setToolTip("A folder of photos of one kind of thing (e.g. horses, flowers, cars)")
        choose.clicked.connect(self.chooseRequested)
        self.recent_button = QToolButton()
        self.recent_button.setText("Recent")
        self.recent_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.recent_menu = QMenu(self)
        self.recent_button.setMenu(self.recent_menu)

        self.view = QListView()
        self.view.setViewMode(QListView.ViewMode.IconMode)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setUniformItemSizes(True)  # lets the view ask only for visible rows
        # Lay items out in batches between events: in one pass, 50,000 rows froze the GUI ~1 s.
        self.view.setLayoutMode(QListView.LayoutMode.Batched)
        self.view.setBatchSize(500)
        self.view.setIconSize(self.model.icon_size())
        self.view.setGridSize(self.model.icon_size() + QSize(6, 6))
        self.view.setDragEnabled(False)
        self.view.setAcceptDrops(False)
        self.view.setWordWrap(False)
        self.view.setModel(self.model)
        self.view.setToolTip("")
        self.view.clicked.connect(lambda index: self.photoChosen.emit(index.row()))
        self.view.activated.connect(lambda index: self.photoChosen.emit(index.row()))

        self.count_label = QLabel("No folder")
        self.count_label.setWordWrap(True)
        self.model.checkedChanged.connect(self._on_checked)

        top = QHBoxLayout()
        top.addWidget(choose)
        top.addWidget(self.recent_button)
        top.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.path_label)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.count_label)

    def usable_count(self) -> int:
        """Photos that can be trained on: listed minus those found unreadable so far."""
        return max(0, self.image_count - len(self.model.bad_files()))

    def checking(self) -> bool:
        """Thumbnails are still being decoded (the unreadable count may still grow)."""
        return self.model.checked() < self.image_count

    @Slot(int)
    def select_photo(self, row: int) -> None:
        """Highlight the thumbnail of the photo shown elsewhere (Results)."""
        if 0 <= row < self.model.rowCount():
            index = self.model.index(row)
            self.view.setCurrentIndex(index)
            self.view.scrollTo(index)

    def set_recent(self, folders: list[str]) -> None:
        self.recent_menu.clear()
        for folder in folders:
            action = self.recent_menu.addAction(folder)
            action.triggered.connect(lambda _=False, f=folder: self.folderRequested.emit(f))
        self.recent_button.setEnabled(bool(folders))

    def show_folder(self, folder: str) -> int | None:
        """Show ``folder``: returns its image count, or None while a background listing runs.

        Raises OSError when the folder cannot be opened at all (checked at once). A small folder
        is listed here; a big one in a worker thread, and ``scanned`` announces its result. An
        answer for a folder that is no longer the one asked for is dropped.
        """
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"not a folder: {folder}")
        small = _at_most(folder, LIST_AT_ONCE)
        paths = scan_images(folder) if small else None
        self.folder = folder
        self.path_label.setText(folder)
        self.path_label.setToolTip(folder)
        if paths is not None:
            self.scanner.forget()  # a big folder still being listed must not replace this one
            self._show_paths(folder, [str(p) for p in paths])
            return self.image_count
        self.scanning = True
        self.image_count = 0
        self.model.set_paths([])
        self.count_label.setText("Scanning the folder…")
        self.count_label.setToolTip("")
        self.scanner.start(folder)
        return None

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Wait for listing threads and stop thumbnail decoding (before the window closes)."""
        ok = self.scanner.shutdown(timeout_ms)
        self.model.shutdown()
        return ok

    @Slot(object)
    def _on_listed(self, listing: FolderListing) -> None:
        if listing.error:
            self.scanning = False
            self.image_count = 0
            self.count_label.setText(f"<span style='color:#e05050'>Cannot list this folder: "
                                     f"{listing.error}</span>")
            self.message.emit(f"Cannot list folder {listing.folder}: {listing.error}", "error")
            self.scanned.emit()
            return
        self._show_paths(listing.folder, listing.paths, listing.seconds)

    def _show_paths(self, folder: str, paths: list[str], seconds: float | None = None) -> None:
        self.scanning = False
        self.image_count = len(paths)
        self.model.set_paths(paths)  # emits checkedChanged: the count label follows
        took = f" (listed in {seconds:.1f} s)" if seconds is not None else ""
        self.message.emit(f"Folder {folder}: {self.image_count} images{took}", "info")
        self.scanned.emit()

    @Slot(int, int, int)
    def _on_checked(self, checked: int, total: int, bad: int) -> None:
        self.countsChanged.emit()
        if total == 0:
            self.count_label.setText("No images in this folder" if self.folder else "No folder")
            return
        # Unreadable files are not images the app can use: "6 images · 2 unreadable" for 8 files
        # with 6 usable ones would promise 6 and deliver 4.
        parts = [f"{total - bad} images"]
        if checked < total:
            parts.append(f"checking {checked}/{total}")
        if bad:
            parts.append(f"<span style='color:#e05050'>{bad} unreadable (hover for the reason)</span>")
        self.count_label.setText(" · ".join(parts))
        self.count_label.setToolTip("\n".join(f"{Path(p).name}: {r}"
                                              for p, r in self.model.bad_files().items()))

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if dropped_folder(event):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        folder = dropped_folder(event)
        if folder:
            event.acceptProposedAction()
            self.folderRequested.emit(folder)
