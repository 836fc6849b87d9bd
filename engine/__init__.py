"""Peel's engine: everything that is not GUI (data, methods, training, export).

Nothing under this package may import Qt; an import-linter contract in pyproject.toml enforces it.
"""

__version__ = "0.1.0"
