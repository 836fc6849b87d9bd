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


def _exited(pid: int) -> bool:
    """Gone, or a zombie nobody reaps (what an orphan becomes where PID 1 does not wait)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc")
def test_grabcut_workers_exit_when_their_parent_is_killed(tmp_path) -> None:
    import time

    code = ("import os, signal\n"
            "from engine.worker_pool import background_pool\n"
            "if __name__ == '__main__':\n"
            "    pool = background_pool(2)\n"
            "    pids = {pool.submit(os.getpid).result(timeout=120) for _ in range(4)}\n"
            "    print(' '.join(map(str, pids)), flush=True)\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    # Output to a file: orphans would hold a pipe open and make run() wait for them.
    with open(tmp_path / "out", "w") as out:
        done = subprocess.run([sys.executable, "-c", code], stdout=out, stderr=subprocess.STDOUT,
                              timeout=180)
    text = (tmp_path / "out").read_text()
    assert done.returncode == -9, text
    pids = [int(p) for p in text.split()]
    assert len(pids) >= 1
    deadline = time.monotonic() + 15
    while not all(_exited(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(_exited(p) for p in pids), f"orphaned workers still running: {pids}"


def test_a_pool_abandoned_before_its_workers_started_prints_no_tracebacks(tmp_path) -> None:
    """Late workers rebuilt the shared decode semaphore after the abandoned pool (and with it the
    semaphore) was collected: each printed a FileNotFoundError traceback (44 on a 16-core box)."""
    script = tmp_path / "abandon.py"
    script.write_text(
        "import gc, os, time\n"
        "from engine.worker_pool import abandon, background_pool\n"
        "def main():\n"
        "    pool = background_pool(3)\n"
        "    futures = [pool.submit(os.getpid) for _ in range(6)]\n"
        "    abandon(pool, futures)\n"
        "    del pool, futures\n"
        "    gc.collect()\n"
        "    time.sleep(5)\n"
        "if __name__ == '__main__':\n"
        "    main()\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, env=env)
    assert done.returncode == 0
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
