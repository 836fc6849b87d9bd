"""What closing the window asks first: a running training or comparison is the user's work, so
the window closes only when they agree to stop it (a training is stopped at a checkpoint and
joined before the window goes)."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

from app.controllers.compare import CompareController
from app.controllers.training import TrainingController
from app.dialogs import Prompter


def agree_to_close(window: QWidget, prompter: Prompter, run: TrainingController,
                   comparison: CompareController) -> bool:
    """False when the user wants to keep a running job (the window stays open)."""
    if run.is_running():
        if not prompter.ask(window, "Training is running",
                            "Stop training and quit? A checkpoint is saved first, so "
                            "the run can be resumed."):
            return False
        run.shutdown()
    return not comparison.is_running() or prompter.ask(
        window, "Comparison is running", "Stop the comparison and quit? Finished methods "
        "are kept and reused when you compare into the same folder again.")
