"""What a run folder already holds for the Live tab: its saved previews and logged losses, so an
opened run (one trained by ``peel train``, say) shows its own history instead of the last one's.
Plain file reading, no Qt."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

STEP_FILE = re.compile(r"step-(\d+)\.png$")
NOT_LOSSES = {"step", "phase", "time", "s_bg"}


@dataclass(frozen=True)
class SavedPreview:
    """A preview grid the trainer wrote (``previews/step-NNNNNNN.png``)."""

    step: int
    path: str


def saved_previews(run_dir: str, last: int) -> list[SavedPreview]:
    """The run's newest ``last`` preview grids, oldest first."""
    folder = Path(run_dir) / "previews"
    found = []
    if folder.is_dir():
        for path in folder.iterdir():
            match = STEP_FILE.search(path.name)
            if match:
                found.append(SavedPreview(int(match.group(1)), str(path)))
    return sorted(found, key=lambda p: p.step)[-last:]


def logged_losses(run_dir: str) -> list[tuple[int, str, dict[str, float]]]:
    """(step, phase, values) for every training record of ``metrics.jsonl``; lines that do not
    parse (a kill can cut the last one) and event records are left out."""
    path = Path(run_dir) / "metrics.jsonl"
    out: list[tuple[int, str, dict[str, float]]] = []
    if not path.is_file():
        return out
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(record, dict) or "event" in record or "phase" not in record:
            continue
        values = {k: float(v) for k, v in record.items()
                  if k not in NOT_LOSSES and not k.startswith("mask_")
                  and isinstance(v, (int, float)) and not isinstance(v, bool)}
        out.append((int(record.get("step", 0)), str(record["phase"]), values))
    return out
