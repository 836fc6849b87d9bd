"""One list of methods: the CLI, the app and compare offer exactly the registry's names, and the
app trains the registry's newest entry (latentdir) and opens its run folder like any other."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.config import LatentDirSettings, PipelineConfig
from engine.methods.registry import SPECS, method_names


def _choices(parser: argparse.ArgumentParser, dest: str) -> list[str]:
    return list(next(a for a in parser._actions if a.dest == dest).choices)


def test_cli_app_and_compare_offer_exactly_the_registry(qtbot, tmp_path):
    from app.panels.compare_dialog import CompareDialog
    from app.panels.training import TrainingPanel
    from engine.cli.main import build_parser
    from engine.compare import CompareConfig

    names = list(method_names())
    assert set(names) == {"ilgan", "perturbgan", "redo", "latentdir"}
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert _choices(sub.choices["train"], "method") == names
    compare_cli = next(a for a in sub.choices["compare"]._actions if a.dest == "methods")
    assert compare_cli.default.split(",") == names
    assert list(CompareConfig(folder="f", gt=None, out="o").methods) == names

    panel = TrainingPanel()
    qtbot.addWidget(panel)
    menu = [panel.method.itemText(i) for i in range(panel.method.count())]
    assert menu == names
    tips = [panel.method.itemData(i, 3) for i in range(panel.method.count())]  # ToolTipRole
    assert tips == [SPECS[n].summary for n in names]
    dialog = CompareDialog(str(tmp_path), str(tmp_path / "out"), 32)
    qtbot.addWidget(dialog)
    assert list(dialog.checks) == names


TINY = {
    "log_every": 1, "preview_every": 2, "checkpoint_every": 10_000, "preview_count": 4,
    "threads": 1,
    "pipeline": PipelineConfig(bootstrap=False, segmenter=False, rounds=0),
    "latentdir": LatentDirSettings(direction_steps=2, batch=4, segmenter_batch=4),
}


def test_app_trains_latentdir_and_opens_its_run_folder(make_window, tiny_demo_folder, qtbot,
                                                       prompter):
    w = make_window()  # the engine's own trainer
    w.config_overrides = TINY
    w.open_folder(str(tiny_demo_folder))
    w.training.method.setCurrentText("latentdir")
    w.training.size.setCurrentIndex(w.training.size.findData(32))
    w.training.batch.setValue(4)
    w.training.by_steps.setChecked(True)
    w.training.steps.setValue(2)
    w.training.bootstrap.setChecked(False)
    w.training.start_button.click()
    qtbot.waitUntil(lambda: w.session is None, timeout=120_000)

    run = Path(w.run_dir)
    assert not prompter.errors, prompter.errors
    assert (run / "segmenter.pt").exists() and (run / "generator" / "checkpoints").is_dir()
    assert any("training perturbgan first" in t for t in w.log.texts())
    assert w.open_run(str(run)), prompter.errors
    assert w.training.method.currentText() == "latentdir"
    # its viewer loaded: no job running and none waiting to follow (a queued 'done' starts one)
    qtbot.waitUntil(lambda: w.jobs.running() == 0 and not w.results._busy, timeout=30_000)
    assert w.results.predictor is not None
