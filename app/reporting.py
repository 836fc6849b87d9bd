"""One way to tell the user something failed: a line in the log and a (non-blocking) error box.

Every part of the window reports through this object, so a failure reads the same wherever it
came from and tests see every one through their recording Prompter.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Slot
from PySide6.QtWidgets import QWidget

from app.dialogs import Prompter
from app.panels.log import LogPane


class FailureReporter(QObject):
    def __init__(self, log: LogPane, prompter: Prompter, parent: QWidget) -> None:
        super().__init__(parent)
        self.log = log
        self.prompter = prompter
        self.window = parent  # the error box is modal to it

    @Slot(str, str)
    @Slot(str, str, str)
    def report(self, title: str, message: str, details: str = "") -> None:
        self.log.add(f"{title}: {message}", "error")
        self.prompter.error(self.window, title, message, details)
