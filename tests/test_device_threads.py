"""CPU use beside the window: thread counts follow the usable cores, GrabCut workers yield the CPU."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux affinity calls")
def test_threads_follow_the_affinity_mask() -> None:
    code = ("import os, torch; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); "
            "torch.set_num_threads(4); "
            "from engine.device import configure_cpu_threads; configure_cpu_threads(); "
            "print(torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "1"


def _niceness() -> int:
    return os.nice(0)


@pytest.mark.skipif(not hasattr(os, "nice"), reason="needs POSIX priorities")
def test_grabcut_workers_run_below_the_window_and_trainer() -> None:
    from engine.worker_pool import WORKER_NICENESS, background_pool

    pool = background_pool(1)
    try:
        worker = pool.submit(_niceness).result(timeout=120)
    finally:
        pool.shutdown()
    assert worker == min(19, os.nice(0) + WORKER_NICENESS)
