"""Issue #17 item 9: while Compare trains a method, its previews show in the Compare tab, drawn on
the panel's timer (the latest frame), never once per preview."""

from __future__ import annotations

import time

from conftest import fake_preview


def test_compare_shows_the_training_methods_previews(make_window, tiny_demo_folder, tmp_path,
                                                     qtbot, monkeypatch):
    import engine.compare

    def fake_compare(config, sink=None, control=None):  # one method training, then cancelled
        for step in range(1, 41):
            sink("ilgan", fake_preview(step))
        deadline = time.monotonic() + 30
        while not control.stop_requested and time.monotonic() < deadline:
            time.sleep(0.01)
        return None

    monkeypatch.setattr(engine.compare, "run_compare", fake_compare)
    w = make_window()
    w.open_folder(str(tiny_demo_folder))
    choice = {"out": str(tmp_path / "cmp"), "methods": ("ilgan",), "minutes": 1.0, "gt": None,
              "size": 32}
    assert w.start_compare(choice)
    view = w.compare
    qtbot.waitUntil(lambda: view.preview.caption.text().startswith("step 40"), timeout=10_000)
    assert view.is_running()
    assert view.preview.isVisible() and view.preview.image._pixmap is not None
    assert 1 <= view.preview.redraws < 40  # the latest frame on a timer, not one per preview
    view.cancel_button.click()
    qtbot.waitUntil(lambda: not view.is_running(), timeout=10_000)
    view.clear()  # another folder: the report figure's place again, no stale previews
    assert not view.preview.isVisible() and view.figure.isVisible()
