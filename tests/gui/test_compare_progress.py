"""The app's comparison job reads the engine's Progress events, whose fraction may be None."""

from __future__ import annotations

import threading

from engine.events import Progress


def test_compare_job_takes_progress_without_a_fraction(monkeypatch):
    import engine.compare
    from app.engine_calls import compare_config, compare_job

    def fake_compare(config, sink=None, control=None):
        sink("ilgan", Progress(3, "bootstrap", 0.0, 1.0, None, None))  # a stage with no estimate
        sink("ilgan", Progress(4, "gan", 2.0, 2.0, 10.0, 0.5))
        return None

    monkeypatch.setattr(engine.compare, "run_compare", fake_compare)
    seen: list[tuple[int, int]] = []
    config = compare_config("photos", "out", ("ilgan",), 1.0, None, 32, "cpu")
    outcome = compare_job(config, torch_threads=1)(lambda d, t: seen.append((d, t)),
                                                   threading.Event())
    assert outcome.report is None
    assert seen[1:] == [(0, 2000), (500, 2000)]  # no estimate: the bar stays where it was
