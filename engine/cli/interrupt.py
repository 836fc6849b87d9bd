"""The first Ctrl-C asks a command to stop; the second one interrupts it at once.

Raised as ``KeyboardInterrupt`` mid-run, the first Ctrl-C unwound ``peel segment`` past the
writes it had made (the summary said "0 written") and waited for reader threads. As a stop
request it is answered like the GUI's Cancel: the run ends within a second and its summary
counts what was written.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def first_interrupt_sets(event: threading.Event) -> Iterator[None]:
    """Within the block, SIGINT sets ``event`` once, then raises ``KeyboardInterrupt``."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def handler(signum: int, frame: object) -> None:
        if event.is_set():
            raise KeyboardInterrupt
        event.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
