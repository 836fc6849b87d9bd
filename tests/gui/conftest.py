"""GUI test fixtures: offscreen Qt, isolated settings, a recording prompter, a scripted trainer.

The scripted trainer lives only here: it lets the window's threading be tested in milliseconds,
independent of how fast the real engine is. Tests that need the real engine use it directly.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from engine.control import RunControl  # noqa: E402
from engine.events import (  # noqa: E402
    CheckpointSaved,
    Event,
    Finished,
    Losses,
    Preview,
    Progress,
    Started,
    WarningEvent,
)


class RecordingPrompter:
    """Answers questions with a fixed reply and records every error instead of blocking."""

    def __init__(self, answer: bool = True) -> None:
        self.answer = answer
        self.questions: list[str] = []
        self.errors: list[tuple[str, str]] = []
        self.opened: list[str] = []
        self.informed: list[tuple[str, str]] = []
        self.can_open = True  # False: like a desktop without a file manager
        self.folder: str | None = None

    def ask(self, parent, title: str, text: str) -> bool:
        self.questions.append(title)
        return self.answer

    def error(self, parent, title: str, text: str, details: str = "") -> None:
        self.errors.append((title, text))

    def choose_folder(self, parent, title: str, start: str = "") -> str | None:
        return self.folder

    def open_folder(self, folder: str) -> bool:
        self.opened.append(folder)
        return self.can_open

    def inform(self, parent, title: str, text: str) -> None:
        self.informed.append((title, text))


def fake_preview(step: int, n: int = 4, size: int = 16) -> Preview:
    rng = np.random.default_rng(step)
    img = rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8)
    mask = rng.integers(0, 255, (n, size, size), dtype=np.uint8)
    return Preview(step=step, background=img, foreground=img[:, ::-1], mask=mask,
                   composite=img[:, :, ::-1], coverage=float(mask.mean() / 255))


def scripted_trainer(step_s: float = 0.002, total: int = 100_000, fail_at: int | None = None):
    """A trainer with the engine's contract: yields events, honours RunControl at each step."""

    def train(config, control: RunControl | None = None, resume: bool = False) -> Iterator[Event]:
        control = control or RunControl()
        out = Path(config.out)
        out.mkdir(parents=True, exist_ok=True)
        yield Started(step=0, device="cpu (fake)", method=config.method, phase="gan",
                      config={}, total_steps=total)
        yield WarningEvent(step=0, message="1 unreadable file skipped: bad.jpg (empty file)")
        step = 0
        t0 = time.perf_counter()
        while step < total:
            if control.wait_if_paused():
                break
            if fail_at is not None and step == fail_at:
                raise RuntimeError("disk full while writing a checkpoint")
            time.sleep(step_s)
            step += 1
            if step % 5 == 0:
                el = time.perf_counter() - t0
                yield Progress(step=step, phase="gan", steps_per_s=step / el, elapsed_s=el,
                               eta_s=(total - step) * el / step, fraction=step / total)
                yield Losses(step=step, phase="gan", values={"d": 1 / step, "g": 0.5,
                                                             "coverage": 0.3})
            if step % 20 == 0:
                yield fake_preview(step)
        ckpt = out / "checkpoints" / f"step-{step:07d}.pt"
        ckpt.parent.mkdir(exist_ok=True)
        ckpt.write_bytes(b"fake")
        yield CheckpointSaved(step=step, path=str(ckpt))
        yield Finished(step=step, run_dir=str(out), stopped=control.stop_requested)

    return train


@pytest.fixture
def settings(tmp_path):
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def prompter() -> RecordingPrompter:
    return RecordingPrompter()


@pytest.fixture
def make_window(qtbot, settings, prompter, tmp_path):
    """Build a MainWindow with isolated settings; every window is closed (and joined) after."""
    from app.window import MainWindow

    made = []

    def make(trainer=None):
        w = MainWindow(settings=settings, prompter=prompter, runs_dir=tmp_path / "runs",
                       trainer=trainer)
        qtbot.addWidget(w)
        w.show()
        made.append(w)
        return w

    yield make
    for w in made:
        prompter.answer = True
        session = w.session
        w.close()
        assert w.session is None
        assert session is None or not session.is_running()
        assert w.jobs.running() == 0, [j.name for j in w.jobs._jobs if j.running()]


@pytest.fixture(autouse=True)
def _gc_back_on_after_gui_tests():
    """A window turns automatic garbage collection off for the process (app/gc_guard.py); the
    tests that follow, without an event loop to run its timer, get it back, after a collection
    here in the GUI thread."""
    import gc

    yield
    gc.collect()
    gc.enable()
