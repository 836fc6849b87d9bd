"""Which photos an export writes, and where: output paths, shards, name clashes, stale temps.

Sharding: photo ``rel`` belongs to shard ``sha1(rel_out.casefold()) mod N`` where ``rel_out`` is
its output path relative to the output folder. It depends only on the photo's own name, so
adding or removing other photos never moves a photo to another shard, and N processes with
shards 1/N … N/N cover the folder exactly once with no coordination. Photos whose outputs clash
(``a.jpg`` and ``a.png`` both want ``a.png``) share a key, hence a shard, so every shard reports
clashes the same way: all clashing photos are reported as failed and none is written (picking
one silently would give a mask of the wrong photo half the time).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from engine.imageio import BadFile, scan_images

log = logging.getLogger(__name__)


class ExportSetupError(Exception):
    """The request cannot start (bad folders, options); nothing was written."""


@dataclass(frozen=True)
class Job:
    src: Path
    out: Path


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/5"`` -> (2, 5); shards are numbered from 1."""
    try:
        i_text, n_text = text.split("/")
        i, n = int(i_text), int(n_text)
    except ValueError as exc:
        raise ExportSetupError(f"--shard must look like I/N (e.g. 1/4), got {text!r}") from exc
    if not 1 <= i <= n:
        raise ExportSetupError(f"--shard I/N needs 1 <= I <= N, got {text!r}")
    return i, n


def shard_of(key: str, n: int) -> int:
    """Shard (1-based) of an output path key; stable across machines and Python versions."""
    digest = hashlib.sha1(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n + 1


def check_folders(in_dir: Path, out_dir: Path, recursive: bool) -> None:
    if not in_dir.is_dir():
        raise ExportSetupError(f"not a folder: {in_dir}")
    src, dst = in_dir.resolve(), out_dir.resolve()
    if src == dst:
        raise ExportSetupError("OUT_DIR must differ from IN_DIR (photos are never overwritten)")
    if recursive and dst.is_relative_to(src):
        raise ExportSetupError(
            "with --recursive, OUT_DIR must not be inside IN_DIR (its masks would be read as photos)"
        )
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportSetupError(f"OUT_DIR is not a folder: {out_dir}")


def plan_jobs(
    in_dir: Path, out_dir: Path, recursive: bool, shard: tuple[int, int] | None
) -> tuple[list[Job], list[BadFile]]:
    """This shard's photos with their output paths, and clashing photos reported as failures."""
    sources = scan_images(in_dir, recursive=recursive)
    if not sources:
        where = "IN_DIR or its sub-folders" if recursive else "IN_DIR (sub-folders need --recursive)"
        raise ExportSetupError(f"no photos in {where}: {in_dir}")
    groups: dict[str, list[tuple[Path, Path]]] = {}
    for src in sources:
        out_rel = src.relative_to(in_dir).with_suffix(".png")
        groups.setdefault(out_rel.as_posix().casefold(), []).append((src, out_rel))
    jobs: list[Job] = []
    clashes: list[BadFile] = []
    for key in sorted(groups):
        if shard is not None and shard_of(key, shard[1]) != shard[0]:
            continue
        group = groups[key]
        if len(group) == 1:
            src, out_rel = group[0]
            jobs.append(Job(src, out_dir / out_rel))
            continue
        names = ", ".join(src.name for src, _ in group)
        for src, out_rel in group:
            clashes.append(
                BadFile(
                    str(src),
                    f"name clash: {names} would all write {out_rel.as_posix()}; rename all but one",
                )
            )
    return jobs, clashes


def remove_stale_temps(jobs: list[Job]) -> int:
    """Delete temp files a killed run left for these outputs (``.NAME.png.XXXX.png``, or
    ``.json`` / ``.txt`` for the annotation formats).

    ``engine.atomic`` writes ``.{name}.{random}{suffix}`` beside the target; only names that
    belong to this run's own outputs are touched, so other shards and other files are safe
    (running the same shard twice at once is not supported).
    """
    names: dict[Path, set[str]] = {}
    for job in jobs:
        names.setdefault(job.out.parent, set()).add(job.out.name)
    removed = 0
    for folder, wanted in names.items():
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            parts = entry.name[1:].rsplit(".", 2)
            if entry.name.startswith(".") and len(parts) == 3 and parts[0] in wanted:
                if entry.is_file() and entry.name.endswith(Path(parts[0]).suffix):
                    entry.unlink(missing_ok=True)
                    removed += 1
    if removed:
        log.info("removed %d temp files left by an interrupted run", removed)
    return removed

