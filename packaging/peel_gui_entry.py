"""Launcher script PyInstaller freezes: the same ``app.main:main`` as the ``peel-gui`` command."""

import multiprocessing
import sys

from app.main import main

if __name__ == "__main__":
    # The GrabCut bootstrap spawns worker processes; a frozen app must route them here.
    multiprocessing.freeze_support()
    sys.exit(main())
