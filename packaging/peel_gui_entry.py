"""Launcher script PyInstaller freezes: the same ``app.main:main`` as the ``peel-gui`` command."""

import sys

from app.main import main

if __name__ == "__main__":
    sys.exit(main())
