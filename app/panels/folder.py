"""Choosing the photo folder: dialog, drag and drop, recent folders; a thumbnail view with counts."""

from __future__ import annotations

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

from app.panels.thumbnails import ThumbnailModel
from engine.imageio import scan_images


def dropped_folder(event: QDragEnterEvent | QDropEvent) -> str | None:
    """The folder a drag carries (a dropped file means its folder), or None."""
    urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
    for url in urls:
        if url.isLocalFile():
            path = Path(url.toLocalFile())
            return str(path if path.is_dir() else path.parent)
    return None


class FolderPanel(QWidget):
    """Shows one folder. Emits ``chooseRequested`` / ``folderRequested(path)``; the window decides."""

    chooseRequested = Signal()
    folderRequested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.folder: str | None = None
        self.image_count = 0
        self.model = ThumbnailModel(self)
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

    def set_recent(self, folders: list[str]) -> None:
        self.recent_menu.clear()
        for folder in folders:
            action = self.recent_menu.addAction(folder)
            action.triggered.connect(lambda _=False, f=folder: self.folderRequested.emit(f))
        self.recent_button.setEnabled(bool(folders))

    def show_folder(self, folder: str) -> int:
        """List the folder's images (decoding happens in the background); returns the count."""
        paths = scan_images(folder)
        self.folder = folder
        self.image_count = len(paths)
        self.path_label.setText(folder)
        self.path_label.setToolTip(folder)
        self.model.set_paths(paths)
        return self.image_count

    @Slot(int, int, int)
    def _on_checked(self, checked: int, total: int, bad: int) -> None:
        if total == 0:
            self.count_label.setText("No images in this folder" if self.folder else "No folder")
            return
        parts = [f"{total} images"]
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
