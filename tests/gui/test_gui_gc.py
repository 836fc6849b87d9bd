"""Garbage is collected in the GUI thread only (app/gc_guard.py): a collection that a training
worker ran deleted Qt objects off the GUI thread and deadlocked the app (CI, test_gui_compare)."""

from __future__ import annotations

import gc
import threading
import weakref


def test_the_window_collects_cycles_in_the_gui_thread_only(make_window, qtbot):
    make_window()
    assert not gc.isenabled()  # no thread collects on allocation
    threads: list[str] = []

    def record(phase: str, info: dict) -> None:
        if phase == "start":
            threads.append(threading.current_thread().name)

    class Node:
        pass

    gc.callbacks.append(record)
    try:
        node = Node()
        node.cycle = node
        ref = weakref.ref(node)
        del node

        def allocate_in_a_worker() -> None:
            junk = [[] for _ in range(5000)]  # crosses the collector's threshold
            del junk

        worker = threading.Thread(target=allocate_in_a_worker, name="worker")
        worker.start()
        worker.join()
        qtbot.waitUntil(lambda: ref() is None, timeout=5000)  # the GUI thread's timer collected it
    finally:
        gc.callbacks.remove(record)
    assert threads and set(threads) == {threading.main_thread().name}
