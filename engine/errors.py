"""Failures the user can fix, typed so that every front end reports them the same way.

The trainer turns every exception into a ``Failed`` event; what the CLI (and the app) should do
with it depends on whose fault it is. An ``InputError`` means the photos, the run folder or the
arguments cannot be used as given (the CLI prints one line and exits 2). Other expected failures
(a run that collapsed, a corrupt checkpoint, a full disk) keep their own types and exit 1; only
an exception nobody expected is reported with its traceback, as a bug.
"""

from __future__ import annotations

import logging
import traceback
from typing import Literal

from engine.events import Failed

# "input": change the folder or the arguments; "run": the run failed for a reason its message
# gives; "internal": a bug, reported with its traceback.
FailureCause = Literal["input", "run", "internal"]


class InputError(Exception):
    """The folder, run folder or arguments given cannot be used; the message says why."""


def failure_cause(exc: BaseException, expected: tuple[type[BaseException], ...]) -> FailureCause:
    """Whose fault ``exc`` is: the input's, the run's (one of ``expected``), or a bug's."""
    if isinstance(exc, InputError):
        return "input"
    return "run" if isinstance(exc, expected) else "internal"


def failed_event(exc: BaseException, step: int, expected: tuple[type[BaseException], ...],
                 log: logging.Logger) -> Failed:
    """The ``Failed`` event every trainer ends with: an expected failure is one line (logged at
    debug level), only a bug is logged with its traceback and named by its exception type."""
    cause = failure_cause(exc, expected)
    log.log(logging.ERROR if cause == "internal" else logging.DEBUG, "training failed: %s", exc,
            exc_info=cause == "internal")
    message = f"{type(exc).__name__}: {exc}" if cause == "internal" else str(exc)
    return Failed(step=step, error=message, traceback=traceback.format_exc(), cause=cause)
