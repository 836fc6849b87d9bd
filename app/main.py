"""``peel-gui [FOLDER]``: open the Peel window, optionally on a folder of photos or a run folder."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path


def _icon_path() -> Path | None:
    root = Path(__file__).resolve().parent.parent / "resources"
    for name in ("peel.png", "icon.png", "peel.svg", "app.png"):
        if (root / name).is_file():
            return root / name
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="peel-gui", description=__doc__)
    parser.add_argument("folder", nargs="?", help="a folder of photos, or a Peel run folder")
    args, qt_args = parser.parse_known_args(argv if argv is not None else sys.argv[1:])
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from app.window import MainWindow

    app = QApplication([sys.argv[0], *qt_args])
    app.setApplicationName("Peel")
    app.setOrganizationName("Peel")
    icon = _icon_path()
    if icon is not None:
        app.setWindowIcon(QIcon(str(icon)))
    window = MainWindow()
    window.show()
    if args.folder:
        folder = os.path.abspath(args.folder)
        if os.path.isfile(os.path.join(folder, "config.json")):
            window.open_run(folder)
        else:
            window.open_folder(folder)
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
