"""Process pools for the CPU-heavy classic steps (GrabCut) that run beside training or a window.

Spawned, not forked: callers may hold Qt or torch threads, which a fork would copy in an
arbitrary state. Each worker lowers its own priority so that the GUI thread and the trainer win
the CPU while masks are computed (on a 2-core machine the window's worst redraw gaps were run-queue
waits behind these workers), and uses one OpenCV thread because the pool already fills the cores.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

WORKER_NICENESS = 10
ORPHAN_POLL_S = 1.0


def usable_cores() -> int:
    """Cores this process may run on (taskset, cgroups), not the machine's count."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _exit_when_orphaned(parent: int) -> None:
    """A worker whose parent died (SIGKILL, or SIGTERM of a CLI mid-bootstrap) would otherwise idle
    on for good: three were found alive an hour after their ``peel compare`` was stopped."""
    while os.getppid() == parent:
        time.sleep(ORPHAN_POLL_S)
    os._exit(0)


def _init_worker(large_decodes) -> None:  # a multiprocessing semaphore
    import cv2

    from engine.imageio import share_large_decodes

    share_large_decodes(large_decodes)

    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True,
                     name="orphan-watch").start()
    try:
        os.nice(WORKER_NICENESS)
    except (AttributeError, OSError):  # not on POSIX, or not allowed: run at normal priority
        pass
    cv2.setNumThreads(1)


def stop_pool_now(pool: ProcessPoolExecutor) -> None:
    """Cancel queued work and end the workers now, for a Ctrl-C or Cancel.

    ``shutdown`` alone lets running tasks finish (a GrabCut of a big photo: seconds each), and the
    interpreter joins the workers at exit anyway, so a cancelled ``baseline grabcut`` took 28 s
    to exit. The workers are terminated instead; a write they were making is atomic (a hidden
    temp file, removed by the next run). ``_processes`` is private but has been the executor's
    process table since Python 3.2; without it the workers are left to finish.
    """
    processes = list(getattr(pool, "_processes", None) or {})
    procs = [pool._processes[pid] for pid in processes]  # type: ignore[attr-defined]
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        try:
            proc.terminate()
        except (OSError, ValueError):  # already gone
            pass


def abandon(pool: ProcessPoolExecutor, pending: Iterable[Future]) -> None:
    """Stop handing out work: cancel every future not yet running, let the running ones end.

    ``shutdown(cancel_futures=True)`` alone is not enough: the executor's manager thread does the
    cancelling later, through a weak reference to the executor, and a pool that was a local of a
    generator is often collected by then, so nothing was cancelled. GrabCut went on for every
    photo in the background, on the core the training was pinned to, and the process waited for
    it at exit (a 2-minute run took 168 s).
    """
    for fut in pending:
        fut.cancel()
    pool.shutdown(wait=False, cancel_futures=True)


_large_decodes: Any = None  # this process's semaphore, created once, never released


def _shared_decode_lock(ctx: Any) -> Any:
    """One semaphore for the process's lifetime, never one per pool.

    A pool's workers start while it runs (spawned on demand, a second or more each) and rebuild
    the semaphore from its name. A pool abandoned before its workers were up (a short stage, a
    deadline) was collected with its semaphore, whose name was then unlinked, so every late
    worker died printing a ``FileNotFoundError`` traceback: 44 of them on a 16-core GPU machine
    in one check.
    """
    global _large_decodes
    if _large_decodes is None:
        _large_decodes = ctx.Semaphore(1)
    return _large_decodes


def background_pool(workers: int | None = None) -> ProcessPoolExecutor:
    """Workers share one semaphore for large decodes: N processes, one large photo at a time."""
    ctx = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(max_workers=max(1, workers or usable_cores()), mp_context=ctx,
                               initializer=_init_worker, initargs=(_shared_decode_lock(ctx),))
