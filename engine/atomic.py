"""Atomic file writes: a crash or kill never leaves a half-written output behind.

Every output Peel writes (checkpoints, masks, JSON, PNG grids) goes through these helpers, so a
rerun can trust that any file that exists is complete.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

_UMASK = os.umask(0)
os.umask(_UMASK)
# "No space left" and "quota exceeded": every later write would fail the same way.
_FULL = {errno.ENOSPC, errno.EDQUOT}


class DiskFullError(OSError):
    """A write ran out of disk space; the target's previous version (if any) is untouched.

    An ``OSError`` with the original errno, so code that handles ``OSError`` still does; the
    message names the file and says what to do, for showing to the user as is.
    """


def _disk_full(target: Path, exc: OSError) -> DiskFullError:
    where = f"the previous {target.name} is kept" if target.exists() else "nothing was written"
    return DiskFullError(
        exc.errno, f"no space left on the disk while writing {target} ({where}); "
        "free some space and run again to continue",
    )


def unwritable_reason(folder: str | os.PathLike[str]) -> str | None:
    """Why no file can be made in ``folder`` (created if missing), or None when one can.

    Asked before any work: a read-only mount or a file where the folder should be otherwise
    surfaced as a traceback at the first write (a run's ``config.json``, an export's temp file).
    """
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".peel-write-test.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except (FileExistsError, NotADirectoryError):
        return "a file is in the way (it must be a folder)"
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` on success.

    The temp file lives in the same folder so the final ``os.replace`` is atomic on one
    filesystem. The suffix is kept so that writers that infer the format from the extension
    (``cv2.imwrite``) still work.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Hidden name (leading dot) so folder scans skip leftovers of a killed process.
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=suffix if suffix is not None else target.suffix,
        dir=target.parent,
    )
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600; outputs should get the usual permissions (0666 minus the umask).
    os.chmod(tmp_path, 0o666 & ~_UMASK)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except OSError as exc:
        if exc.errno in _FULL and not isinstance(exc, DiskFullError):
            raise _disk_full(target, exc) from exc
        raise
    except RuntimeError as exc:
        # torch.save reports a failed write as RuntimeError ("... file write failed"), having
        # lost the errno; a full disk is by far the usual cause, so ask the disk.
        if _no_space(target.parent):
            raise _disk_full(target, OSError(errno.ENOSPC, str(exc))) from exc
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _no_space(folder: Path) -> bool:
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 1024 * 1024


def write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def write_text(target: str | os.PathLike[str], text: str) -> None:
    write_bytes(target, text.encode("utf-8"))


def write_json(target: str | os.PathLike[str], obj: Any) -> None:
    write_text(target, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_with(target: str | os.PathLike[str], writer: Callable[[IO[bytes]], None]) -> None:
    """Write through ``writer(fh)`` (e.g. ``torch.save``) into a temp file, then rename."""
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as fh:
            writer(fh)
            fh.flush()
            os.fsync(fh.fileno())


_TEMP = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}(?P<suffix>\.[^.]*)?(\..*)?\Z")


def remove_stale_temps(*targets: str | os.PathLike[str]) -> int:
    """Delete the temp files killed writers of ``targets`` left beside them; returns how many.

    ``atomic_path`` names them ``.{name}.{8 random chars}{suffix}`` (and an exporter may add a
    sidecar after that name); a kill -9 mid-write leaves one that no later run would otherwise
    remove. Only regular files with exactly that shape are touched, never links; each folder is
    listed once, so a folder of 50,000 outputs costs one listing. Two writers of the same target
    at once are not supported (the other's temp would go).
    """
    wanted: dict[Path, set[str]] = {}
    for target in map(Path, targets):
        wanted.setdefault(target.parent, set()).add(target.name)
    removed = 0
    for folder, names in wanted.items():
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            m = _TEMP.match(entry.name)
            if m is None or m["name"] not in names:
                continue
            if Path(m["name"]).suffix != (m["suffix"] or ""):
                continue
            if not stat.S_ISREG(entry.stat(follow_symlinks=False).st_mode):
                continue
            try:
                os.unlink(entry.path)
                removed += 1
            except OSError as exc:
                log.warning("cannot remove the stale temp file %s: %s", entry.path, exc)
    if removed:
        log.info("removed %d temp files that interrupted writes left", removed)
    return removed
