"""The training panel says what budget the folder needs here before Start (issue #16): "about N
minutes here", from the rates the last run measured on this machine, computed off the GUI thread."""

from __future__ import annotations

import threading

from app.controllers import estimate as estimate_mod
from engine.train import rates
from engine.train.plan import Rates


def test_the_estimate_shows_before_start_from_the_last_measured_rates(make_window, qtbot, monkeypatch):
    threads: list[str] = []
    real = estimate_mod.estimate_text

    def recorded(*args):
        threads.append(threading.current_thread().name)
        return real(*args)

    monkeypatch.setattr(estimate_mod, "estimate_text", recorded)
    w = make_window()
    panel = w.training
    panel.size.setCurrentIndex(panel.size.findData(32))
    panel.device.setCurrentText("cpu")
    panel.minutes.setValue(2)

    panel.warn_photos(200, still_counting=False)  # nothing measured on this machine yet
    qtbot.waitUntil(lambda: panel.estimate_label.isVisible(), timeout=5000)
    assert panel.estimate_label.text().startswith("No estimate yet")

    rates.save_rates(Rates(grabcut_s=0.4, fit_step_s=0.15), "cpu", 32)  # a run measured them
    panel.minutes.setValue(3)
    qtbot.waitUntil(lambda: "you gave 3" in panel.estimate_label.text(), timeout=5000)
    assert panel.estimate_label.text().startswith("About 4.5 minutes here")
    assert panel.estimate_label.isVisible() and not w.run.is_running()  # before Start

    panel.minutes.setValue(10)
    qtbot.waitUntil(lambda: "10 is enough" in panel.estimate_label.text(), timeout=5000)
    assert threads and all(name == "budget-estimate" for name in threads)  # never the GUI thread

    panel.by_steps.setChecked(True)  # a step budget does not depend on this machine's speed
    assert not panel.estimate_label.isVisible()
