"""Choosing where to compute, and saying so: the UI and CLI always show what really runs."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from engine.worker_pool import usable_cores


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
        # Returned, not logged: every caller shows it (a run as a warning event), and the CLI
        # printed it twice when it was also logged.
        return torch.device("cpu"), "CUDA was requested but is not available here; running on the CPU"
    return torch.device("cpu"), None


def configure_cpu_threads(threads: int | None = None) -> None:
    """Use ``threads`` torch threads when asked (every trainer's ``--threads``), else every core
    this process may run on for intra-op work; torch's default can under-use small machines, and
    cores outside the affinity mask (taskset, cgroups) only make OpenMP threads wait for each
    other. On a shared machine fewer threads than cores can be many times faster: OpenMP workers
    that spin-wait on a busy core stall every op (measured 18x at 32 px)."""
    n = threads or usable_cores()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The reduced precision every trainer uses on ``device``, or None for full precision.

    bf16 needs no GradScaler, but only Ampere and later run it natively: on older GPUs
    ``is_bf16_supported()`` says yes through emulation, which is slower than float32, so
    emulation does not count. The CPU trains in float32 (CPU bf16 autocast is slower here).
    """
    if device.type != "cuda":
        return None
    if torch.cuda.is_bf16_supported(including_emulation=False):
        return torch.bfloat16
    return None


def autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """Autocast at ``autocast_dtype(device)``, or nothing: the one decision for every trainer."""
    dtype = autocast_dtype(device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def prepare_cuda(device: torch.device) -> None:
    """Leave cuDNN's autotuning off, whatever a host program set.

    ``cudnn.benchmark`` times every kernel choice once per shape. Measured on an H200
    (bench/cuda_warmup.py, bench/RESULTS.md 2026-12-04 session 3): with it a 30-step pipeline run
    took 36.0 s, without it 14.7 s; the prior's first step came after 12.1 s instead of 2.6 s
    (in a one-minute run that left the prior one step), and the steady rates were no better
    (GAN 20.7 steps/s without, 25.8 with; segmenter 64 against 59). Peel's nets are small.
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False


def to_device(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host batch on ``device``; to a GPU through pinned memory, so the copy does not block.

    ``non_blocking`` from ordinary (pageable) memory is a blocking copy in disguise.
    """
    if device.type != "cuda" or batch.device.type == "cuda":
        return batch.to(device)
    return batch.pin_memory().to(device, non_blocking=True)
