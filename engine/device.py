"""Choosing where to compute, and saying so: the UI and CLI always show what really runs."""

from __future__ import annotations

import logging

import torch

from engine.worker_pool import usable_cores

log = logging.getLogger(__name__)


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    n = torch.get_num_threads()
    return f"cpu ({n} thread{'' if n == 1 else 's'})"


def pick_device(requested: str = "auto") -> tuple[torch.device, str | None]:
    """Return the device to use and a warning when the request could not be honoured."""
    requested = requested.lower()
    if requested not in {"auto", "cpu", "cuda"}:
        raise ValueError(f"unknown device {requested!r} (auto, cpu or cuda)")
    if requested == "cpu":
        return torch.device("cpu"), None
    if torch.cuda.is_available():
        return torch.device("cuda"), None
    if requested == "cuda":
        msg = "CUDA was requested but is not available here; running on the CPU"
        log.warning(msg)
        return torch.device("cpu"), msg
    return torch.device("cpu"), None


def configure_cpu_threads() -> None:
    """Use every core this process may run on for intra-op work; torch's default can under-use
    small machines, and cores outside the affinity mask (taskset, cgroups) only make OpenMP
    threads wait for each other."""
    n = usable_cores()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
