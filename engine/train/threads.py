"""The default number of torch CPU threads, chosen by timing this machine as it is now.

On a quiet machine every core is fastest; on a busy one, OpenMP threads that wait for a core
another process holds stall every op, and one thread was 2.5-4x faster than two (issue #16).
A core count cannot tell the two apart, so a run without ``--threads`` times a few small
convolution steps with one thread and with every usable core, and keeps the faster.
"""

from __future__ import annotations

import logging
import time

import torch
from torch import nn

from engine.device import usable_cores

log = logging.getLogger(__name__)

REPEATS = 3
# More threads must be clearly faster to be chosen: one thread is never the slow surprise.
MARGIN = 0.9


def pick_threads(timings: dict[int, float]) -> int:
    """The thread count to use from seconds per probe step (pure): the most threads whose time
    is under ``MARGIN`` x one thread's, else one."""
    one = timings.get(1)
    if one is None:
        return min(timings, key=timings.__getitem__)
    best = 1
    for n, seconds in sorted(timings.items()):
        if n > 1 and seconds < MARGIN * one and seconds <= timings[best]:
            best = n
    return best


def time_threads(size: int) -> dict[int, float]:
    """Seconds per forward + backward of a small conv stack at ``size`` px, batch 8, per thread
    count (1 and every usable core); the torch thread setting is left as it was."""
    counts = sorted({1, usable_cores()})
    before = torch.get_num_threads()
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1))
    x = torch.randn(8, 3, size, size, generator=torch.Generator().manual_seed(0))
    out: dict[int, float] = {}
    try:
        with torch.random.fork_rng(devices=[]):
            for n in counts:
                torch.set_num_threads(n)
                net(x).square().mean().backward()  # warm-up
                t0 = time.perf_counter()
                for _ in range(REPEATS):
                    net(x).square().mean().backward()
                out[n] = (time.perf_counter() - t0) / REPEATS
    finally:
        torch.set_num_threads(before)
    return out


def choose_threads(size: int) -> tuple[int, str]:
    """Time, pick, set; returns the count and the one line that says how it was chosen."""
    timings = time_threads(size)
    n = pick_threads(timings)
    torch.set_num_threads(n)
    said = ", ".join(f"{k}: {v * 1000:.0f} ms" for k, v in sorted(timings.items()))
    line = f"threads chosen by timing ({said} a probe step)"
    log.info(line)
    return n, line
