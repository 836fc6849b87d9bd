"""Data-parallel training under ``torchrun`` (several processes, GPUs or machines), same results.

Launched by ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` in the environment, world > 1),
the trainer joins a process group (gloo on the CPU, NCCL on CUDA; each process uses
``cuda:LOCAL_RANK`` or the CPU) and every ``--batch`` is the *global* batch, split evenly over the
processes. Otherwise every function here is a no-op and the single-process path is unchanged.

The aim is that N processes train the same model as one process with the same global batch, not
merely "a" model. Three things make that so:

* **Randomness is drawn for the global batch.** Every process seeds the same generators, draws
  every random thing (photo crops, latent codes, perturbations, DiffAugment, segmenter
  augmentation) for the whole global batch and keeps its own rows (``shard``, ``rows``). Each
  sample of the global batch therefore sees the same numbers whatever the process count, and the
  RNG streams of all processes stay in step.
* **BatchNorm uses global batch statistics** (``GlobalBatchNorm2d``): the generators and the UNet
  normalise with BatchNorm, whose output depends on the whole batch. ``torch.nn.SyncBatchNorm``
  runs on CUDA only, so a small version built on a differentiable all-reduce is used everywhere.
* **Gradients are averaged before each optimiser step** (``average_grads``), one flat all-reduce
  per step. DistributedDataParallel wrappers are not used: in a GAN the discriminator runs in both
  the D step and the G step with ``requires_grad`` toggled, twice per D step (real, fake) and, for
  WGAN-GP, under a double backward, none of which DDP's reducer supports without
  ``find_unused_parameters`` / ``static_graph`` contortions; averaging by hand is the same
  collective without that machinery (at these model sizes there is little backward to overlap
  with anyway).

What remains different between 1 and N processes is float rounding: sums are taken in a different
order (gradient averaging, batch statistics), so weights agree to ~1e-5 after a few steps, not
bit for bit (``tests/test_distributed.py`` measures it).

Control: only rank 0 writes the run folder (config, metrics, previews, checkpoints, segmenters)
and prints; a time budget is decided on rank 0's clock and a stop request on any process stops
all of them at the same step (``agree_done``, ``stop_agreed``), so no process is left waiting in a
collective. The run folder must be on storage every process can read (for ``--resume`` and
collapse recovery, which read checkpoints back).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from engine.control import RunControl
from engine.worker_pool import usable_cores

log = logging.getLogger(__name__)


class DistributedError(Exception):
    """A setting that cannot work with this number of processes (message meant for the user)."""


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


_world = World()
_sharded_draws = False  # inside a GAN step: per-sample random draws keep this rank's rows


def launched() -> bool:
    """True when started by torchrun (or any launcher setting the same variables) with world > 1."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def world() -> World:
    return _world


def is_main() -> bool:
    """Rank 0, or the only process: the one that writes the run folder and reports."""
    return _world.main


def setup(device: torch.device, threads: int | None = None) -> torch.device:
    """Join the process group when launched by torchrun; return the device this process uses.

    Idempotent. CPU ranks share the machine's cores (``threads`` per process when given, else
    cores / processes on this machine), since each rank spinning every core would stall them all.
    """
    global _world
    if not launched():
        return device
    env = os.environ
    info = World(
        rank=int(env["RANK"]), size=int(env["WORLD_SIZE"]),
        local_rank=int(env.get("LOCAL_RANK", "0")),
        local_size=int(env.get("LOCAL_WORLD_SIZE", env["WORLD_SIZE"])),
    )
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        # Ranks wait for each other at the GrabCut broadcast (rank 0 works alone there): allow it.
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=60))
        log.info("rank %d of %d joined (%s, %s)", info.rank, info.size, backend, device)
    if device.type == "cpu":
        torch.set_num_threads(threads or max(1, usable_cores() // info.local_size))
    _world = info
    return device


def check_batch(batch: int, what: str) -> None:
    """The global batch must split evenly, or ranks would weigh their samples differently."""
    if _world.active and batch % _world.size:
        raise DistributedError(
            f"{what} {batch} does not split over {_world.size} processes; use a multiple of "
            f"{_world.size}"
        )


def shutdown(clean: bool = True) -> None:
    """Leave the process group.

    After a clean finish the ranks first wait for each other: a rank that tore down its gloo
    connections while its peer was still finishing sometimes died with SIGABRT ("terminate
    called without an active exception"; 2 of 6 runs of tests/test_distributed.py here). After a
    failure they do not wait (a peer may be stuck in a collective), and gloo's wait is bounded.
    """
    global _world
    if dist.is_initialized():
        if clean:
            try:
                if dist.get_backend() == "gloo":
                    dist.monitored_barrier(timeout=datetime.timedelta(minutes=5))
                else:
                    dist.barrier()
            except RuntimeError as exc:  # a peer is gone: leave anyway
                log.warning("leaving the process group without the other ranks: %s", exc)
        dist.destroy_process_group()
    _world = World()


# -- randomness for the global batch ----------------------------------------------------------
@contextlib.contextmanager
def sharded_draws() -> Iterator[None]:
    """While active, ``rows`` draws for the global batch and keeps this rank's rows."""
    global _sharded_draws
    if not _world.active:
        yield
        return
    before, _sharded_draws = _sharded_draws, True
    try:
        yield
    finally:
        _sharded_draws = before


Drawn = TypeVar("Drawn")


def rows(n: int, draw: Callable[[int], Drawn]) -> Drawn:
    """``draw(n)`` (per-sample random draws: a tensor of first dimension n, or a dataclass of
    such tensors, such as an augmentation's parameters), the same for any world size.

    Single process, or outside ``sharded_draws``: exactly ``draw(n)``. Inside a GAN step under
    torchrun: ``draw(n * world)`` on every rank, this rank's n rows of every tensor in it.
    """
    if not _sharded_draws:
        return draw(n)
    r = _world.rank
    return _take_rows(draw(n * _world.size), slice(r * n, (r + 1) * n))


def _take_rows(drawn: Any, part: slice) -> Any:
    if isinstance(drawn, torch.Tensor):
        return drawn[part]
    if dataclasses.is_dataclass(drawn) and not isinstance(drawn, type):
        return dataclasses.replace(drawn, **{
            f.name: _take_rows(getattr(drawn, f.name), part) for f in dataclasses.fields(drawn)})
    raise TypeError(f"rows: cannot split a {type(drawn).__name__} by sample")


def shard(batch: torch.Tensor) -> torch.Tensor:
    """This rank's rows of a global batch (the whole batch when not distributed)."""
    if not _world.active:
        return batch
    n = batch.shape[0] // _world.size
    return batch[_world.rank * n : (_world.rank + 1) * n]


# -- collectives ------------------------------------------------------------------------------
class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks with a gradient: d(sum)/d(own part) is the sum of every rank's gradient."""

    @staticmethod
    def forward(ctx: object, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        g = grad.clone()
        dist.all_reduce(g)
        return g


def average_grads(optimizer: torch.optim.Optimizer) -> None:
    """Replace every gradient of ``optimizer``'s parameters by its mean over ranks (one all-reduce).

    Each rank's loss is a mean over its equal share of the global batch, so the mean of the ranks'
    gradients is the gradient of the global-batch loss.
    """
    if not _world.active:
        return
    grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    if not grads:
        return
    flat = _flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    flat /= _world.size
    for g, avg in zip(grads, _unflatten_dense_tensors(flat, grads), strict=True):
        g.copy_(avg)


def mean_terms(terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Loss terms averaged over ranks, so every rank logs and judges the global batch's losses."""
    if not _world.active or not terms:
        return terms
    keys = list(terms)
    packed = torch.stack([terms[k].detach().float().reshape(()) for k in keys])
    dist.all_reduce(packed)
    packed /= _world.size
    return dict(zip(keys, packed.unbind(0), strict=True))


def _device_for_collectives() -> torch.device:
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def agree_done(done: bool) -> bool:
    """Rank 0's answer (a time budget runs on rank 0's clock), on every rank."""
    if not _world.active:
        return done
    flag = torch.tensor([1.0 if done else 0.0], device=_device_for_collectives())
    dist.broadcast(flag, 0)
    return bool(flag.item())


def main_value(value: float) -> float:
    """Rank 0's ``value`` on every rank (e.g. the fraction of a time budget used)."""
    if not _world.active:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=_device_for_collectives())
    dist.broadcast(t, 0)
    return float(t.item())


def stop_agreed(control: RunControl) -> bool:
    """``control.stop_requested``, made true on every rank once any rank asked to stop.

    Call it at the same point on every rank (a step boundary); it is a collective when distributed.
    """
    requested = control.stop_requested
    if not _world.active:
        return requested
    flag = torch.tensor([1.0 if requested else 0.0], device=_device_for_collectives())
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    if flag.item() > 0 and not requested:
        control.stop()
    return flag.item() > 0


def broadcast_object(obj: object) -> object:
    """Rank 0's ``obj`` (picklable) on every rank."""
    if not _world.active:
        return obj
    box = [obj if _world.main else None]
    dist.broadcast_object_list(box, 0, device=_device_for_collectives())
    return box[0]


def gather_object(obj: object) -> list[object]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank; ``[obj]`` alone."""
    if not _world.active:
        return [obj]
    out: list[object] = [None] * _world.size
    dist.all_gather_object(out, obj)
    return out


# -- BatchNorm over the global batch ----------------------------------------------------------
class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training-mode statistics are those of the global batch (all ranks).

    Same parameters, buffers and state_dict as ``nn.BatchNorm2d`` (modules are converted in place
    by ``convert_batch_norm``), so checkpoints and ``segmenter.pt`` files are unchanged. In eval
    mode, or without a process group, it is plain BatchNorm. Statistics are summed in float64:
    E[x²] − E[x]² in float32 would lose digits that torch's own BatchNorm keeps.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and _world.active and dist.is_initialized()):
            return super().forward(x)
        c = x.shape[1]
        xd = x.double()
        count = torch.full((1,), x.numel() / c, dtype=torch.float64, device=x.device)
        packed = torch.cat([xd.sum((0, 2, 3)), (xd * xd).sum((0, 2, 3)), count])
        packed = _AllReduceSum.apply(packed)
        n = packed[-1].detach()
        mean = packed[:c] / n
        var = (packed[c : 2 * c] / n - mean * mean).clamp(min=0)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)  # type: ignore[union-attr]
                m = (
                    1.0 / float(self.num_batches_tracked)  # type: ignore[arg-type]
                    if self.momentum is None else self.momentum
                )
                unbiased = var * (n / (n - 1).clamp(min=1.0))  # on the device: no host wait
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), m)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), m)  # type: ignore[union-attr]
        invstd = torch.rsqrt(var + self.eps).float()
        shape = (1, c, 1, 1)
        y = (x.float() - mean.float().view(shape)) * invstd.view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def convert_batch_norm(module: nn.Module) -> nn.Module:
    """Make every ``BatchNorm2d`` in ``module`` a ``GlobalBatchNorm2d`` (in place; no-op alone)."""
    if not _world.active:
        return module
    for m in module.modules():
        if type(m) is nn.BatchNorm2d:
            m.__class__ = GlobalBatchNorm2d
    return module


__all__ = [
    "DistributedError", "GlobalBatchNorm2d", "NullLog", "World", "agree_done", "average_grads",
    "broadcast_object", "check_batch", "convert_batch_norm", "env_rank", "is_main", "launched", "main_value",
    "mean_terms", "rows", "setup", "shard", "sharded_draws", "shutdown", "stop_agreed", "world",
]


class NullLog:
    """The metrics log of ranks other than 0: only rank 0 writes ``metrics.jsonl``."""

    def append(self, record: dict[str, object]) -> None:
        pass

    def truncate_after(self, step: int) -> None:
        pass

    def read(self) -> list[dict[str, object]]:
        return []


def env_rank() -> int:
    """This process's rank as torchrun set it (0 when not launched), before ``setup`` runs."""
    return int(os.environ.get("RANK", "0")) if launched() else 0
