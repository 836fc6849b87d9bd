"""Checkpoints: everything needed to continue a run exactly, loadable with ``weights_only=True``.

Only tensors, numbers, strings, lists and dicts go inside. RNG states that are not tensors
(Python's, numpy's) are stored as JSON strings. Files are written atomically, so after a kill -9
every ``step-*.pt`` on disk is complete; a file that still fails to load is reported by name.
"""

from __future__ import annotations

import json
import logging
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.atomic import write_with
from engine.parallel import distributed
from engine.safeload import code_refusal

log = logging.getLogger(__name__)

SCHEMA = 1
KIND = "peel-run"
_NAME = re.compile(r"^step-(\d{7,})\.pt$")


class CheckpointError(Exception):
    """A checkpoint is missing, corrupt or not a Peel run checkpoint; the message says which."""


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def step_path(run_dir: Path, step: int) -> Path:
    return checkpoint_dir(run_dir) / f"step-{step:07d}.pt"


def good_path(run_dir: Path) -> Path:
    return checkpoint_dir(run_dir) / "good.pt"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Rolling checkpoints, oldest first."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def capture_rng(data_rng: np.random.Generator) -> dict[str, Any]:
    legacy = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": json.dumps(_listify(random.getstate())),
        "numpy": json.dumps([legacy[0], legacy[1].tolist(), *legacy[2:]]),
        "data": json.dumps(data_rng.bit_generator.state),
    }
    if torch.cuda.is_available():
        # One state per rank, of the device that rank draws on (rank order): a resume may see
        # fewer GPUs, and under torchrun each rank's generator is its own, not rank 0's list.
        own = torch.cuda.get_rng_state(torch.cuda.current_device())
        state["cuda"] = distributed.gather_object(own)
    return state


def restore_rng(state: dict[str, Any], data_rng: np.random.Generator) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = json.loads(state["python"])
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = json.loads(state["numpy"])
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    data_rng.bit_generator.state = json.loads(state["data"])
    if "cuda" in state and torch.cuda.is_available():
        _restore_cuda_rng(list(state["cuda"]))


def _restore_cuda_rng(states: list[torch.Tensor]) -> None:
    """This rank's saved CUDA state onto the device it uses now; none saved for it, none set.

    Checkpoints before this change hold one state per visible device of rank 0's process;
    the entry at index 0 is still rank 0's, so single-GPU runs resume exactly either way.
    """
    rank = distributed.world().rank
    if rank >= len(states):
        log.warning("no CUDA random state saved for rank %d; it keeps its seeded one", rank)
        return
    torch.cuda.set_rng_state(states[rank], torch.cuda.current_device())


def _listify(value: Any) -> Any:
    return [_listify(v) for v in value] if isinstance(value, tuple) else value


def save(path: Path, payload: dict[str, Any]) -> None:
    write_with(path, lambda fh: torch.save({"schema": SCHEMA, "kind": KIND, **payload}, fh))


def load(path: Path) -> dict[str, Any]:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise CheckpointError(f"{path}: no such checkpoint") from exc
    except Exception as exc:
        refused = code_refusal(path, exc)
        if refused is not None:
            raise CheckpointError(refused) from exc
        raise CheckpointError(
            f"{path} is corrupt or not a Peel checkpoint ({type(exc).__name__}); "
            "delete it to resume from an older one, or start a new run"
        ) from exc
    if not isinstance(payload, dict) or payload.get("kind") != KIND:
        raise CheckpointError(f"{path} is not a Peel run checkpoint")
    if payload.get("schema") != SCHEMA:
        raise CheckpointError(f"{path}: unsupported checkpoint schema {payload.get('schema')!r}")
    return payload


def save_rolling(run_dir: Path, step: int, payload: dict[str, Any], keep: int, good: bool) -> Path:
    """Write ``step-N.pt``, copy it to ``good.pt`` when it passed the guard, keep the last ``keep``."""
    path = step_path(run_dir, step)
    save(path, payload)
    if good:
        write_with(good_path(run_dir), lambda fh: fh.write(path.read_bytes()))
    # Prune only older ones: after a recovery the new file is not the latest until
    # ``drop_after`` has removed the abandoned later ones, and it must survive that moment.
    older = [p for p in list_checkpoints(run_dir) if _step_of(p) < step]
    for old in older[: max(0, len(older) - (keep - 1))]:
        old.unlink(missing_ok=True)
    return path


def _step_of(path: Path) -> int:
    m = _NAME.match(path.name)
    return int(m.group(1)) if m else -1


def drop_after(run_dir: Path, step: int) -> None:
    """Delete rolling checkpoints later than ``step``: after a recovery they belong to the
    abandoned trajectory, and a resume must not pick them up."""
    for path in list_checkpoints(run_dir):
        if _step_of(path) > step:
            path.unlink(missing_ok=True)


# engine.atomic's temp names: ".{target name}.{8 random chars}{target suffix}".
_TEMP = re.compile(r"^\..+\.[a-z0-9_]{8}\.(pt|png|json|jsonl)$")


def remove_stale_temps(run_dir: Path) -> int:
    """Delete temp files a killed run left in its run folder (the next write makes new ones).

    They are hidden and never read, so they are harmless, but a run killed many times would
    pile them up. Only Peel's own sub-folders of the run are looked at.
    """
    removed = 0
    run_dir = Path(run_dir)
    for folder in (run_dir, checkpoint_dir(run_dir), run_dir / "previews", run_dir / "bootstrap",
                   run_dir / "bootstrap" / "masks"):
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if _TEMP.match(entry.name) and entry.is_file():
                entry.unlink(missing_ok=True)
                removed += 1
    if removed:
        log.info("removed %d temp files left by an interrupted run in %s", removed, run_dir)
    return removed

