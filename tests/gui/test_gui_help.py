"""Issue #17 item 10: Help menu, window title, and a warning before training on too few photos."""

from __future__ import annotations


def test_about_names_version_device_and_onnxruntime(make_window, prompter):
    w = make_window()
    menus = [a.text() for a in w.menuBar().actions()]
    assert menus == ["&File", "&Tools", "&Help"]
    w.show_about()
    w.show_quick_start()
    (title, about), (quick, steps) = prompter.informed
    assert title == "About Peel" and "Peel 0.1" in about
    assert "Training device: cpu" in about or "Training device: cuda" in about
    assert "onnxruntime" in about and "ExecutionProvider" in about
    assert quick == "Quick start" and "Choose a folder" in steps


def test_few_usable_photos_are_flagged_and_the_title_names_the_folder(make_window,
                                                                      tiny_demo_folder, qtbot):
    (tiny_demo_folder / "broken.png").write_bytes(b"")
    w = make_window()
    assert w.windowTitle() == "Peel"
    w.open_folder(str(tiny_demo_folder))
    qtbot.waitUntil(lambda: "checking" not in w.folder_panel.count_label.text(), timeout=5000)
    assert w.windowTitle() == f"{tiny_demo_folder.name} · Peel"
    assert w.folder_panel.usable_count() == 12
    assert w.training.photos_warning.isVisible()
    assert "Only 12 usable photos" in w.training.photos_warning.text()
    assert w.training.start_button.isEnabled()  # a warning, not a refusal
