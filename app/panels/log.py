"""The log pane: what happened during the run, warnings and errors highlighted."""

from __future__ import annotations

import html
import time

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QPlainTextEdit, QWidget

from engine.describe import describe, level
from engine.events import Progress

LEVEL_COLOURS = {"info": "#c8c8c8", "warning": "#f0c040", "error": "#ff6b6b", "ok": "#7ddc7d"}


class LogPane(QPlainTextEdit):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setMaximumBlockCount(5000)
        self.setStyleSheet("QPlainTextEdit { background: #1b1b1b; }")  # a long run must not grow memory without bound
        self.entries: list[tuple[str, str]] = []  # (level, text), for tests and copy-out

    def add(self, text: str, level: str = "info") -> None:
        self.entries.append((level, text))
        del self.entries[:-5000]
        colour = LEVEL_COLOURS.get(level, LEVEL_COLOURS["info"])
        stamp = time.strftime("%H:%M:%S")
        tag = "" if level in ("info", "ok") else f"{level.upper()}: "
        self.appendHtml(f"<span style='color:#808080'>{stamp}</span> "
                        f"<span style='color:{colour}'>{html.escape(tag + text)}</span>")

    @Slot(object)
    def on_event(self, ev: object) -> None:
        """A training event in the words the CLI uses; progress is the status line's, not here."""
        if isinstance(ev, Progress):
            return
        text = describe(ev)  # type: ignore[arg-type]
        if text:
            self.add(text, level(ev))  # type: ignore[arg-type]

    def texts(self, level: str | None = None) -> list[str]:
        return [t for lv, t in self.entries if level is None or lv == level]
