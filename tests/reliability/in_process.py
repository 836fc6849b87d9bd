"""Running Peel's code in the test's own process (a subprocess costs seconds of imports), with
a bound where it could block."""

from __future__ import annotations

import threading
from pathlib import Path

from engine.imageio import ImageReadError, read_rgb


def peel(capsys, *args: str) -> tuple[int, str, str]:
    """``peel ARGS`` in this process (a subprocess costs seconds of imports): exit code, out,
    err. An exception escaping ``main`` (a traceback) fails the test by itself."""
    from engine.cli.main import main

    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def read_in_thread(path: Path, timeout: float = 2.0) -> str:
    """``read_rgb``'s refusal reason; fails (instead of hanging the suite) if it blocks."""
    out: dict[str, str] = {}

    def target() -> None:
        try:
            read_rgb(path)
            out["reason"] = "decoded"
        except ImageReadError as exc:
            out["reason"] = exc.reason

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"reading {path.name} blocked"
    return out["reason"]
