"""Questions and error reports to the user, behind one small object the tests can replace.

Errors open a window-modal QMessageBox with ``open()``, which returns at once: a failure report
never blocks the event loop (so a worker's final signals still arrive, and tests never hang).
Yes/no questions block, as a user expects; tests inject a Prompter whose answer is fixed.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget


class Prompter:
    def __init__(self) -> None:
        self.boxes: list[QMessageBox] = []

    def ask(self, parent: QWidget, title: str, text: str) -> bool:
        answer = QMessageBox.question(parent, title, text)
        return answer == QMessageBox.StandardButton.Yes

    def error(self, parent: QWidget, title: str, text: str, details: str = "") -> QMessageBox:
        box = QMessageBox(QMessageBox.Icon.Critical, title, text, QMessageBox.StandardButton.Ok,
                          parent)
        if details:
            box.setDetailedText(details)
        box.finished.connect(lambda _=0, b=box: self._forget(b))
        self.boxes.append(box)
        box.open()
        return box

    def _forget(self, box: QMessageBox) -> None:
        if box in self.boxes:
            self.boxes.remove(box)
        box.deleteLater()

    def choose_folder(self, parent: QWidget, title: str, start: str = "") -> str | None:
        folder = QFileDialog.getExistingDirectory(parent, title, start)
        return folder or None

    def save_file(self, parent: QWidget, title: str, default: str, filters: str) -> str | None:
        path, _ = QFileDialog.getSaveFileName(parent, title, default, filters)
        return path or None

    def inform(self, parent: QWidget, title: str, text: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Information, title, text, QMessageBox.StandardButton.Ok,
                          parent)
        box.setTextFormat(Qt.TextFormat.RichText)
        box.finished.connect(lambda _=0, b=box: self._forget(b))
        self.boxes.append(box)
        box.open()

    def open_folder(self, folder: str) -> bool:
        """Show ``folder`` in the file manager; False when nothing could (a bare desktop)."""
        from PySide6.QtCore import QUrl
        from PySide6.QtGui import QDesktopServices

        return bool(QDesktopServices.openUrl(QUrl.fromLocalFile(folder)))
