"""Listing a photo folder off the GUI thread, so that opening a huge folder never freezes the window.

``scan_images`` on 50,000 files took 0.5-13 s on the shared test machine (it grows with the load),
all of it a frozen window when it ran inside ``FolderPanel.show_folder`` (bench/RESULTS.md, "Opening
a 50,000-file folder without freezing"). Here each listing runs as a one-shot job on a
superqt worker (``app.workers.JobRunner``), and its answer comes back as a queued signal.

Every request gets a ticket; only the newest ticket's answer is delivered. A listing cannot be
interrupted half way (``os.scandir`` has no cancel), so an older one still running when another
folder is chosen simply finishes and its answer is dropped. ``shutdown`` waits for every listing
thread, so closing the window never leaves one running.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, Signal, Slot

from app.workers import JobRunner
from engine.imageio import scan_images

log = logging.getLogger(__name__)


@dataclass
class FolderListing:
    """What one listing found: the image paths (sorted, as ``scan_images`` gives them) or why not."""

    ticket: int
    folder: str
    paths: list[str] = field(default_factory=list)
    error: str = ""  # "" when the folder was listed
    seconds: float = 0.0


class FolderScanner(QObject):
    """Lists folders in worker threads; emits ``listed(FolderListing)`` for the newest request only."""

    listed = Signal(object)  # FolderListing, always the newest request's

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._runner = JobRunner(self)
        self._ticket = 0

    def start(self, folder: str) -> int:
        """Begin listing ``folder``; returns its ticket. Earlier requests' answers will be dropped."""
        self._ticket += 1
        ticket = self._ticket

        def job(progress: Callable[[int, int], None], cancel: threading.Event) -> FolderListing:
            t = time.perf_counter()
            try:
                paths = [str(p) for p in scan_images(folder)]  # strings: the model wants them
            except OSError as exc:  # gone, not a folder, no permission: tell the user why
                return FolderListing(ticket, folder, error=str(exc) or type(exc).__name__,
                                     seconds=time.perf_counter() - t)
            except Exception as exc:  # a bug; still answered, or the panel says "Scanning" forever
                log.exception("listing %s failed", folder)
                return FolderListing(ticket, folder, error=f"{type(exc).__name__}: {exc}",
                                     seconds=time.perf_counter() - t)
            return FolderListing(ticket, folder, paths, seconds=time.perf_counter() - t)

        self._runner.start(job, "folder-scan", on_result=self._on_result)
        return ticket

    def forget(self) -> None:
        """Drop the answers of every request made so far (the folder was shown another way)."""
        self._ticket += 1

    def running(self) -> int:
        """Listing threads still running (stale ones included)."""
        return self._runner.running()

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Drop pending answers and wait for every listing thread; True when all ended in time."""
        self.forget()
        return self._runner.shutdown(timeout_ms)

    @Slot(object)
    def _on_result(self, listing: FolderListing) -> None:
        if listing.ticket != self._ticket:
            log.debug("dropped the listing of %s: another folder was chosen", listing.folder)
            return
        self.listed.emit(listing)
