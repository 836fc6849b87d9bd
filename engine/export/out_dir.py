"""The export's OUT_DIR: proved writable before any work, and its run log opened safely.

Both refuse with one ``ExportSetupError`` line before a photo is processed: a read-only mount or a
link planted where the log goes is a setup problem, not a failure of every photo.
"""

from __future__ import annotations

import logging
import os
import stat
from datetime import datetime
from pathlib import Path
from typing import IO

from engine.atomic import unwritable_reason
from engine.export.jobs import ExportSetupError
from engine.text import one_line

log = logging.getLogger(__name__)


def writable_out_dir(out_dir: Path) -> None:
    """Create OUT_DIR and prove a file can be made in it, or one ``ExportSetupError`` line
    (read-only mount, immutable or foreign folder): without this every photo failed the same way
    or a traceback ended the run."""
    why = unwritable_reason(out_dir)
    if why is not None:
        raise ExportSetupError(f"cannot write to OUT_DIR {out_dir}: {why}")


class RunLog:
    """Appends to OUT_DIR/peel-segment.log so failures survive the console scrolling away.

    Opened without following links and only if it is a regular file: a link planted there would
    make Peel append to a file outside OUT_DIR, and a FIFO would block the open. Refusing is an
    ``ExportSetupError`` (one line, nothing processed). Entries are one line each.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        flags = (os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
                 | getattr(os, "O_NONBLOCK", 0))
        try:
            fd = os.open(path, flags, 0o666)
        except OSError as exc:
            if os.path.islink(path):
                raise ExportSetupError(
                    f"{path} is a symbolic link; refusing to follow it (remove it)") from exc
            raise ExportSetupError(f"cannot open the run log {path}: {exc.strerror or exc}") from exc
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ExportSetupError(f"{path} is not a regular file; refusing to write to it")
        # backslashreplace: a file name need not be valid UTF-8 on Linux; logging it must not fail.
        self._fh: IO[str] = open(fd, "a", encoding="utf-8", errors="backslashreplace")  # noqa: SIM115 - closed in close()

    def line(self, text: str) -> None:
        stamp = datetime.now().isoformat(timespec="seconds")
        try:
            self._fh.write(f"{stamp} {one_line(text)}\n")
            self._fh.flush()
        except OSError as exc:  # a full disk: the log is secondary, the summary still tells
            log.warning("cannot write %s: %s", self.path, exc)

    def close(self) -> None:
        try:
            self._fh.close()
        except OSError as exc:
            log.warning("cannot write %s: %s", self.path, exc)
