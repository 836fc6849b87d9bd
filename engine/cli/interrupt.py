"""Ctrl-C for long commands: the first one asks the engine to stop cleanly, a second one quits."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

from engine.control import RunControl


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
