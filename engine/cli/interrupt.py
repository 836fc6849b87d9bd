"""Ctrl-C for long commands: the first one asks the command to stop; the second one interrupts
it at once.

Raised as ``KeyboardInterrupt`` mid-run, the first Ctrl-C unwound ``peel segment`` past the
writes it had made (the summary said "0 written") and waited for reader threads. As a stop
request it is answered like the GUI's Cancel: the run ends within a second and its summary
counts what was written.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

from engine.control import RunControl


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


def stop_on_first_interrupt(control: RunControl, say: Callable[[str], None]) -> Any:
    """First Ctrl-C asks the trainer to stop at the next step (it writes a checkpoint); a second
    one interrupts for real. Returns the previous handler (None when nothing was installed).

    A KeyboardInterrupt raised inside the trainer's own frame would end the generator before it
    could save, so the first one is turned into a stop request instead. Only the main thread may
    install signal handlers; elsewhere (tests, embedding) nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: object) -> None:
        if control.stop_requested:
            raise KeyboardInterrupt
        say("stopping at the next step (a checkpoint is written); Ctrl-C again to quit now")
        control.stop()

    return signal.signal(signal.SIGINT, handler)
