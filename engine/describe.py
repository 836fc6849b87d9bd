"""One sentence per training event, for every place a person reads them.

The CLI's lines, the app's log pane and its status line all say the same thing about the same
event, so a user moving between them never meets two wordings (or two different counts) for one
fact. Pure functions of the event: no I/O, no Qt, no state.
"""

from __future__ import annotations

from engine.events import (
    CheckpointSaved,
    Event,
    Failed,
    Finished,
    PhaseChanged,
    PlanMade,
    Progress,
    Started,
    WarningEvent,
)
from engine.text import one_line


def clock(seconds: float | None) -> str:
    """``m:ss`` or ``h:mm:ss``; a dash when unknown."""
    if seconds is None or seconds != seconds:  # None or NaN
        return "–"
    s = max(0, int(round(seconds)))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def level(event: Event) -> str:
    """How a display should mark the event: info, ok, warning or error."""
    if isinstance(event, Failed):
        return "error"
    if isinstance(event, WarningEvent):
        return "warning"
    if isinstance(event, Finished):
        return "ok"
    return "info"


def where(event: Progress) -> str:
    """The stage and how far it is, without the rate: ``gan · step 120``,
    ``segmenter · fit step 40/400`` (a fit's own count of its total: what a user can compare
    with the plan) or ``bootstrap · 34/200 photos``."""
    if event.unit != "steps" and event.total is not None:
        return f"{event.phase} · {event.done or 0}/{event.total} {event.unit}"
    if event.done is not None:  # a fit counting its own steps
        total = f"/{event.total}" if event.total is not None else ""
        return f"{event.phase} · fit step {event.done}{total}"
    return f"{event.phase} · step {event.step}"


def rate(event: Progress) -> str:
    """``12.3 steps/s · stage ETA 0:42`` (the ETA is the stage's: the engine knows no other)."""
    run = f" · run ends in {clock(event.run_eta_s)}" if event.run_eta_s is not None else ""
    return f"{event.steps_per_s:.2f} {event.unit}/s · stage ETA {clock(event.eta_s)}{run}"


def plan_row(row: dict[str, object]) -> str:
    """``gan 3.5 min`` (``(~1200 steps)`` with rates), ``gan to GAN step 20`` or
    ``segmenter 400 fit steps``."""
    if "minutes" in row:
        photos = f" on {row['photos']} photos" if "photos" in row else ""
        steps = f" (~{row['expected_steps']} steps{photos})" if "expected_steps" in row else ""
        return f"{row['stage']} {row['minutes']:g} min{steps}"
    if "until_step" in row:
        return f"{row['stage']} to GAN step {row['until_step']}"
    if "fit_steps" in row:
        photos = f" on up to {row['photos']} photos" if "photos" in row else ""
        return f"{row['stage']} {row['fit_steps']} fit steps{photos}"
    return str(row["stage"])


def describe(event: Event) -> str:
    """The event in one line; "" for events that are drawn rather than read (losses, previews).

    Control characters are escaped here, for the console and the app's log alike: a file name
    holding an escape sequence recoloured the terminal in a skipped-file warning."""
    return one_line(_text(event))


def _text(event: Event) -> str:
    match event:
        case Started():
            return (f"training {event.method} on {event.device} "
                    f"(stage {event.phase}, from step {event.step})")
        case PlanMade():
            text = "plan: " + ", ".join(plan_row(r) for r in event.stages)
            return text + (f" ({event.note})" if event.note else "")
        case PhaseChanged():
            return f"stage: {event.phase}" + (f" ({event.detail})" if event.detail else "")
        case Progress():
            return f"{where(event)} · {rate(event)}"
        case CheckpointSaved():
            return f"checkpoint {event.path}" + ("" if event.good else " (not marked good)")
        case WarningEvent():
            return event.message
        case Failed():
            return event.error
        case Finished():
            verb = "stopped" if event.stopped else "finished"
            dropped = event.summary.get("dropped") or []
            without = f" without {', '.join(dropped)} (failed, dropped)" if dropped else ""
            return f"{verb} at step {event.step}{without}; run folder {event.run_dir}"
    return ""


def console_line(event: Event) -> str:
    """The event as one plain console line ("" for events that are drawn rather than read): a
    warning or an error says so first, as the app's log marks it."""
    text = describe(event)
    mark = level(event)
    return f"{mark}: {text}" if text and mark in ("warning", "error") else text
