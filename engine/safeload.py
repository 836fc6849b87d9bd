"""Loading torch files safely: weights only, and a plain message when a file holds code.

Apart from the trainer on purpose: checkpoints, segmenters and priors are all loaded with
``torch.load(..., weights_only=True)``, and the segmenter (low in the engine) must not import the
run machinery (above it) to say why a file was refused.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def code_refusal(path: str | Path, exc: BaseException) -> str | None:
    """The user's message when ``torch.load(..., weights_only=True)`` refused a pickle that
    would import or call something (a file from elsewhere that may run code), else None.

    torch's own message suggests ``weights_only=False``, which is exactly what must not be done
    with a file of unknown origin, so it is not shown as is.
    """
    text = str(exc)
    if not isinstance(exc, pickle.UnpicklingError) or "weights only load failed" not in text.lower():
        return None
    found = _GLOBAL.search(text)
    if found is None:  # not code: a file of another kind (a JPEG said it held code) or damaged
        return None
    what = f" ({found.group(1)})"
    return (
        f"{path} was refused: besides weights it holds Python code that would run when "
        f"loaded{what}. Peel loads weights only; a file from Peel never holds code, so this one "
        "was made or changed elsewhere. Do not use it unless you know where it came from"
    )
