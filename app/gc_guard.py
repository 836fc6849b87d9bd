"""Python's garbage collector, run only in the GUI thread.

The cyclic collector runs in whichever thread happens to allocate when a threshold is crossed.
When that is a training worker and the garbage holds Qt objects (a closed window's widgets in a
reference cycle), their destructors run off the GUI thread and can deadlock with it: seen in CI,
a worker's collection deleting a QObject waited for the GIL while the GUI thread, holding the GIL,
waited on that object's lock; every thread stopped, the per-test timeout's too. So the app turns
automatic collection off and collects on a GUI-thread timer (pyqtgraph's ``GarbageCollector``).
"""

from __future__ import annotations

import gc
from typing import Any

_collector: Any = None


def collect_in_gui_thread() -> None:
    """Install the GUI-thread collector once per process (call from the GUI thread); every
    call turns automatic collection off again (a test may have turned it back on)."""
    global _collector
    if _collector is None:
        from pyqtgraph.util.garbage_collector import GarbageCollector

        _collector = GarbageCollector(interval=1.0)
    gc.disable()
