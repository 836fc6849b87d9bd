"""Peel's engine: everything that is not GUI (data, methods, training, export).

Nothing under this package may import Qt; an import-linter contract in pyproject.toml enforces it.
"""

import os

__version__ = "0.1.0"

# OpenCV reads its decode cap once, when it is loaded; the engine's modules load it after this
# line. Peel's own header checks (engine.imageio) come first; this catches a header that lies
# to them (the decoder's own size is checked before its allocation). Same as imageio.MAX_PIXELS.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", "250000000")
