"""``metrics.jsonl``: one JSON object per logged step, appended as training goes.

Appends are not atomic, so on resume the log is cut back to the checkpoint's step: lines written
after the last checkpoint of a killed run describe steps that will be trained again.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from engine.atomic import write_text


class MetricsLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(_clean(record), sort_keys=True) + "\n")

    def truncate_after(self, step: int) -> None:
        """Cut the log back to ``step``: every stage counts on the run's global step, so what lies
        past the checkpoint's step is work the resumed run does again."""
        if not self.path.exists():
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
                if record.get("step", 0) <= step:
                    kept.append(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill
        write_text(self.path, "".join(k + "\n" for k in kept))

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines()]


def _clean(record: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN: non-finite floats become strings so the log stays parseable."""
    return {
        k: (repr(v) if isinstance(v, float) and not math.isfinite(v) else v)
        for k, v in record.items()
    }
