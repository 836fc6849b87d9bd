"""Tools ▸ Compare methods… on the open folder: the real engine comparison with tiny nets and
budgets (as tests/test_compare.py keeps it small), driven through the action and its dialog."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtWidgets import QDialogButtonBox

from engine.config import NetConfig, PipelineConfig

TINY_GAN = {"batch": 4, "log_every": 1, "preview_every": 2, "checkpoint_every": 2,
            "net": NetConfig(g_width=4, d_width=4, z_dim=8),
            "pipeline": PipelineConfig(bootstrap=False, rounds=0, segmenter_steps=2,
                                       segmenter_batch=4)}
TINY = {
    "ilgan": TINY_GAN,
    "redo": {"batch": 3, "mask_width": 4, "gen_width": 4, "critic_width": 4, "restart_until": 0,
             "log_every": 1, "preview_every": 2, "checkpoint_every": 2},
}


def _open_dialog(w, folder: Path, methods: tuple[str, ...], out: Path, gt: str):
    w.open_folder(str(folder))
    assert w.compare_action.isEnabled()
    w.compare_action.trigger()
    dialog = w.compare_dialog_box
    assert dialog.isVisible()
    for name, box in dialog.checks.items():
        box.setChecked(name in methods)
    dialog.out.setText(str(out))
    dialog.gt.setText(gt)
    return dialog


def _accept(dialog) -> None:
    dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()


def test_compare_from_the_window_shows_a_result_per_method(make_window, tiny_demo_folder,
                                                            tmp_path, qtbot, prompter):
    w = make_window()
    w.compare_overrides = {"minutes": None, "steps": 2, "overrides": TINY}
    w.training.device.setCurrentText("cpu")
    out = tmp_path / "cmp"
    dialog = _open_dialog(w, tiny_demo_folder, ("ilgan", "redo"), out, "")
    # The demo folder's masks/ is offered as ground truth; clearing it means "no masks".
    assert dialog.choice()["gt"] is None and dialog.choice()["methods"] == ("ilgan", "redo")
    dialog.size.setCurrentIndex(dialog.size.findData(32))
    _accept(dialog)

    view = w.compare
    assert view.is_running() and w.tabs.currentWidget() is view
    assert not w.training.start_button.isEnabled() and not w.compare_action.isEnabled()
    qtbot.waitUntil(lambda: not view.is_running(), timeout=240_000)
    assert not prompter.errors, prompter.errors
    assert view.outcome is not None and view.outcome.report is not None
    assert view.method_rows() == ["ilgan", "redo", "grabcut"]
    assert [view.table.item(r, 6).text() for r in range(3)] == ["trained", "trained", "baseline"]
    assert view.table.isColumnHidden(1)  # no ground truth: no IoU column
    assert view.figure.pixmap is not None and view.figure.pixmap.width() > 100
    assert "no ground truth" in view.title.text()
    assert json.loads((out / "report.json").read_text())["size"] == 32
    assert w.training.start_button.isEnabled() and w.compare_action.isEnabled()
    assert any("Comparison done" in t for t in w.log.texts("ok"))

    view.open_button.click()
    assert prompter.opened == [str(out)]

    # Again into the same folder with the demo's ground truth: the runs are reused, now scored.
    dialog = _open_dialog(w, tiny_demo_folder, ("ilgan", "redo"), out,
                          str(tiny_demo_folder / "masks"))
    _accept(dialog)
    qtbot.waitUntil(lambda: not view.is_running(), timeout=120_000)
    assert not prompter.errors, prompter.errors
    assert [view.table.item(r, 6).text() for r in range(3)] == ["reused", "reused", "baseline"]
    assert not view.table.isColumnHidden(1)
    for r in range(3):
        assert 0.0 <= float(view.table.item(r, 1).text()) <= 1.0  # IoU of each method


def test_compare_cancel_stops_training_and_writes_no_report(make_window, tiny_demo_folder,
                                                            tmp_path, qtbot, prompter):
    w = make_window()
    w.compare_overrides = {"minutes": None, "steps": 100_000, "device": "cpu", "size": 32,
                           "overrides": TINY}
    out = tmp_path / "cancelled"
    dialog = _open_dialog(w, tiny_demo_folder, ("ilgan", "redo"), out, "")
    _accept(dialog)
    view = w.compare
    # Methods run in the dialog's order: ilgan trains first; cancel once it has logged steps.
    qtbot.waitUntil(lambda: view.progress.maximum() > 0
                    and (out / "ilgan" / "metrics.jsonl").exists(), timeout=120_000)
    view.cancel_button.click()
    qtbot.waitUntil(lambda: not view.is_running(), timeout=120_000)
    assert not prompter.errors, prompter.errors
    assert view.outcome is not None and view.outcome.report is None
    assert "cancelled" in view.title.text()
    assert not (out / "report.md").exists() and not (out / "redo").exists()
    assert list((out / "ilgan" / "checkpoints").glob("step-*.pt"))  # resumable
    assert any("Comparison cancelled" in t for t in w.log.texts("warning"))
    assert w.training.start_button.isEnabled()


def test_compare_without_photos_or_with_bad_settings(make_window, tiny_demo_folder, tmp_path,
                                                      prompter):
    w = make_window()
    assert not w.compare_action.isEnabled()  # no folder open
    w.open_folder(str(tiny_demo_folder))
    ok = w.start_compare({"methods": ("redo",), "minutes": 1.0, "size": 32,
                          "gt": str(tmp_path / "missing"), "out": str(tmp_path / "x")})
    assert not ok and not w.compare.is_running()
    assert prompter.errors and "ground-truth folder does not exist" in prompter.errors[0][1]
