"""Progress of a long command on stderr: a redrawn bar on a terminal, plain lines otherwise.

A 79 s ``peel segment --refine`` with its output captured (CI, ``nohup``, a pipe) printed nothing
between its start and its summary, so it could not be told from a hung one. When stderr is not a
terminal a plain line is printed every ``PLAIN_EVERY_S`` seconds instead of the bar.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

PLAIN_EVERY_S = 5.0
BAR_EVERY_S = 0.2


def _clock(seconds: float | None) -> str:
    return "--:--:--" if seconds is None else time.strftime("%H:%M:%S", time.gmtime(seconds))


class ProgressLine:
    """Call with (done, total, rate, failed); ``close()`` ends the bar's line."""

    def __init__(self, label: str, unit: str = "photos", stream: TextIO | None = None) -> None:
        self.label = label
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._started = time.monotonic()
        self._last = self._started if not self.tty else 0.0
        self._drawn = False

    def __call__(self, done: int, total: int, rate: float | None = None, failed: int = 0) -> None:
        now = time.monotonic()
        every = BAR_EVERY_S if self.tty else PLAIN_EVERY_S
        if now - self._last < every and not (self.tty and done >= total):
            return
        self._last = now
        if rate is None:
            elapsed = now - self._started
            rate = done / elapsed if elapsed > 0 else 0.0
        eta = _clock((total - done) / rate) if rate > 0 else _clock(None)
        bad = f", {failed} failed" if failed else ""
        if self.tty:
            frac = done / total if total else 1.0
            filled = int(frac * 30)
            self.stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total} "
                              f"{rate:5.1f} {self.unit}/s ETA {eta}{bad}   ")
            self._drawn = True
        else:
            self.stream.write(f"{self.label}: {done}/{total} {self.unit}, {rate:.1f}/s, "
                              f"ETA {eta}{bad}\n")
        self.stream.flush()

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
