"""Persistent GUI state (QSettings): recent folders, last training settings, window geometry."""

from __future__ import annotations

import os
from pathlib import Path

import appdirs
from PySide6.QtCore import QSettings

MAX_RECENT = 8


def default_settings() -> QSettings:
    return QSettings("Peel", "Peel")


def default_runs_dir() -> Path:
    """Where new runs go unless the user picks another place."""
    return Path(appdirs.user_data_dir("Peel")) / "runs"


def recent_folders(settings: QSettings) -> list[str]:
    value = settings.value("recent_folders", [])
    if isinstance(value, str):  # QSettings returns a bare string for one-element lists
        value = [value]
    return [str(v) for v in (value or []) if v and os.path.isdir(str(v))]


def add_recent_folder(settings: QSettings, folder: str) -> list[str]:
    folder = str(Path(folder).resolve())
    items = [folder] + [f for f in recent_folders(settings) if f != folder]
    items = items[:MAX_RECENT]
    settings.setValue("recent_folders", items)
    return items
