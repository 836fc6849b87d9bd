"""Drive a real Peel window and save screenshots of its main states (run under Xvfb at 1280×800).

    QT_QPA_PLATFORM=xcb xvfb-run -a -s '-screen 0 1280x800x24' \
        .venv/bin/python docs/screenshots/take.py DEMO_FOLDER [--train-seconds S] [--run RUN_DIR]

Writes docs/screenshots/{empty,folder,training,results}.png. Training runs the real engine on the
folder; the results view needs a run folder with segmenter.pt (``--run``, or the run it trains).

With ``--compare OUT`` (the output folder of a finished ``peel compare`` or Tools ▸ Compare
methods… on FOLDER) it only writes compare.png: the Compare view showing that report.

With ``--opened RUN`` (a run trained by ``peel train``) it only writes opened-run.png (the Live
tab of that run as File ▸ Open run folder shows it) and export-dialog.png (Export masks…).

``--fit-steps N`` shortens the prior and segmenter fits of the live run, and ``--wait-plots K``
takes the training shot once K stage kinds have reported losses (3: prior, GAN and segmenter).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from app.window import MainWindow  # noqa: E402

OUT = Path(__file__).resolve().parent


def pump(app: QApplication, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def wait_for(app: QApplication, cond, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        app.processEvents()
        if cond():
            return True
        time.sleep(0.02)
    return False


def save(window: MainWindow, app: QApplication, name: str) -> None:
    pump(app, 0.5)
    window.grab().save(str(OUT / f"{name}.png"))
    print("saved", OUT / f"{name}.png")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--train-seconds", type=float, default=240)
    parser.add_argument("--run", help="a finished run folder for the results view")
    parser.add_argument("--compare", help="only compare.png: a finished comparison's folder")
    parser.add_argument("--method", default=None, help="method for the live run (default: the app's)")
    parser.add_argument("--bootstrap", action="store_true", help="train the GrabCut prior first")
    parser.add_argument("--previews", type=int, default=4,
                        help="previews (every 10 steps) to wait for before the training shot")
    parser.add_argument("--opened", help="only opened-run.png and export-dialog.png: a CLI run")
    parser.add_argument("--fit-steps", type=int, help="prior/segmenter fit steps of the live run")
    parser.add_argument("--wait-plots", type=int, default=1,
                        help="stage kinds with losses to wait for before the training shot")
    args = parser.parse_args()

    app = QApplication(sys.argv[:1])
    tmp = Path(tempfile.mkdtemp(prefix="peel-shots-"))
    settings = QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, runs_dir=tmp / "runs")
    window.resize(1280, 800)
    window.move(0, 0)
    window.show()
    if args.compare:
        window.open_folder(args.folder)
        wait_for(app, lambda: "checking" not in window.folder_panel.count_label.text(), 30)
        window.compare.show_report(args.compare)
        window.tabs.setCurrentWidget(window.compare)
        save(window, app, "compare")
        window.close()
        return 0
    if args.opened:
        window.open_run(args.opened)
        wait_for(app, lambda: "checking" not in window.folder_panel.count_label.text(), 30)
        window.tabs.setCurrentIndex(0)
        save(window, app, "opened-run")
        dialog = window.export_masks_dialog()
        pump(app, 0.5)
        dialog.format.showPopup()  # the formats on offer, as a user opening the list sees them
        pump(app, 0.5)
        # The list is a popup window of its own: grab the screen around the dialog.
        area = dialog.frameGeometry().united(dialog.format.view().window().frameGeometry())
        app.primaryScreen().grabWindow(0, area.x(), area.y(), area.width(), area.height()).save(
            str(OUT / "export-dialog.png"))
        dialog.format.hidePopup()
        print("saved", OUT / "export-dialog.png")
        dialog.reject()
        window.close()
        return 0
    save(window, app, "empty")

    window.open_folder(args.folder)
    wait_for(app, lambda: "checking" not in window.folder_panel.count_label.text(), 30)
    save(window, app, "folder")

    # Live training: small and quick (32 px, by default no bootstrap), previews every 10 steps.
    window.config_overrides = {"preview_every": 10, "log_every": 5}
    if args.fit_steps:
        from dataclasses import replace

        from engine.config import PipelineConfig

        window.config_overrides["pipeline"] = replace(PipelineConfig(),
                                                      segmenter_steps=args.fit_steps)
    if args.method:
        window.training.method.setCurrentText(args.method)
    window.training.size.setCurrentIndex(0)
    window.training.by_steps.setChecked(True)
    window.training.steps.setValue(args.steps)
    window.training.batch.setValue(16)
    window.training.bootstrap.setChecked(args.bootstrap)
    window.training.start_button.click()
    wait_for(app, lambda: len(window.preview.history) >= args.previews
             and len(window.plots.loss_plots) >= args.wait_plots, args.train_seconds)
    pump(app, 1.0)
    gan = window.plots._pages.get("GAN")
    if gan is not None:  # the stage most worth looking at, whichever runs now
        window.plots.loss_tabs.setCurrentWidget(gan)
    save(window, app, "training")
    if args.run is None:
        wait_for(app, lambda: window.session is None, 1200)
    else:
        window.stop_training()
        wait_for(app, lambda: window.session is None, 120)
        window.open_run(args.run)
    window.tabs.setCurrentWidget(window.results)
    window.results.show_photo(3)
    wait_for(app, lambda: window.results.current is not None
             and window.results.current.path.endswith(Path(window.results.photos[3]).name), 60)
    save(window, app, "results")
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
