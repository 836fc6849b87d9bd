"""engine.describe: the one wording of events shared by the CLI, the app's log and status line."""

from __future__ import annotations

from engine.describe import clock, console_line, describe, level, where
from engine.events import Failed, Finished, Losses, PhaseChanged, Progress, Started, WarningEvent


def test_photo_stages_count_photos_not_a_frozen_step() -> None:
    ev = Progress(step=0, phase="bootstrap", steps_per_s=18.1, elapsed_s=2.0, eta_s=4.0,
                  fraction=0.25, unit="photos", done=50, total=200)
    assert where(ev) == "bootstrap · 50/200 photos"
    assert describe(ev) == "bootstrap · 50/200 photos · 18.10 photos/s · stage ETA 0:04"


def test_step_stages_and_the_other_events() -> None:
    ev = Progress(step=346, phase="gan", steps_per_s=2.5, elapsed_s=9.0, eta_s=3725.0,
                  fraction=0.5)
    assert describe(ev) == "gan · step 346 · 2.50 steps/s · stage ETA 1:02:05"
    started = Started(step=7, device="cpu (1 thread)", method="perturbgan", phase="gan", config={})
    assert describe(started) == "training perturbgan on cpu (1 thread) (stage gan, from step 7)"
    assert describe(PhaseChanged(step=1, phase="segmenter", detail="pairs")) == \
        "stage: segmenter (pairs)"
    assert describe(Finished(step=9, run_dir="/r", stopped=True)) == "stopped at step 9; run folder /r"
    assert [level(e) for e in (started, WarningEvent(step=0, message="m"),
                               Failed(step=0, error="e"), Finished(step=0, run_dir="r"))] == \
        ["info", "warning", "error", "ok"]
    fit = Progress(step=540, phase="round-1-segmenter", steps_per_s=9.0, elapsed_s=1.0,
                   eta_s=40.0, fraction=0.1, done=40, total=400)
    assert where(fit) == "round-1-segmenter · fit step 40/400"
    assert clock(None) == "–" and clock(59.6) == "1:00"


def test_a_console_line_marks_warnings_and_errors_and_skips_drawn_events() -> None:
    assert console_line(WarningEvent(3, "few photos")) == "warning: few photos"
    assert console_line(Failed(3, "disk full")) == "error: disk full"
    assert console_line(PhaseChanged(3, "gan")) == "stage: gan"
    assert console_line(Losses(3, "gan", {"d": 1.0})) == ""


def test_control_characters_are_escaped_for_every_display() -> None:
    """describe() feeds the app's log as well as the console: a file name's escape sequence or
    newline must reach neither raw."""

    text = describe(WarningEvent(0, "skipped a\x1b[31mred\nname.png: empty file"))
    assert "\x1b" not in text and "\n" not in text
    assert "a\\x1b[31mred\\nname.png" in text
