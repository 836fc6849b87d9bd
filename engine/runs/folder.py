"""One run folder (``RUN_DIR``): where each file of a run lives, and the one writer of segmenter.pt.

Every method writes the same layout (docs/ARCHITECTURE.md, "Run folder"), so the CLI, the app and
``peel compare`` open any method's run the same way: ``RunFolder(path).read_config()`` reads the
``RunConfig`` of any registered method, ``resumable()`` says whether ``--resume`` has a step to
continue from, and ``write_segmenter`` is the only place that replaces ``segmenter.pt``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from torch import nn

from engine.atomic import write_bytes, write_json
from engine.config import RunConfig

log = logging.getLogger(__name__)

SEGMENTER = "segmenter.pt"


class RunFolder:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # -- where things are ---------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def previews(self) -> Path:
        return self.path / "previews"

    @property
    def prior_path(self) -> Path:
        return self.path / "bootstrap" / "prior.pt"

    @property
    def segmenter_path(self) -> Path:
        return self.path / SEGMENTER

    @property
    def summary_path(self) -> Path:
        return self.path / "summary.json"

    def stage_segmenter_path(self, stage: str) -> Path:
        """A segmenter stage's own copy (a redone stage restarts from the previous one's)."""
        return self.checkpoints / f"segmenter-{stage}.pt"

    # -- reading ------------------------------------------------------------------------------
    def read_config(self) -> RunConfig:
        """The run's configuration, whatever its method; ValueError with a one-line reason."""
        if not self.config_path.is_file():
            raise ValueError("no config.json (not a Peel run folder)")
        try:
            data = json.loads(self.config_path.read_text(encoding="utf-8"))
            return RunConfig.from_dict(data)
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"{self.config_path} is not a valid run configuration ({exc})") from exc

    def step_checkpoints(self) -> list[Path]:
        """Rolling ``step-*.pt`` checkpoints, oldest first (not good.pt, not half-written temps)."""
        from engine.runs.checkpoint import list_checkpoints

        return list_checkpoints(self.path)

    def resumable(self) -> bool:
        """Whether ``--resume`` continues from a saved step (a kill before the first step
        checkpoint leaves only temp files: such a run starts again, it does not resume)."""
        return bool(self.step_checkpoints())

    # -- writing ------------------------------------------------------------------------------
    def write_config(self, config: RunConfig) -> None:
        write_json(self.config_path, config.to_dict())

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.summary_path, summary)

    def write_segmenter(
        self, net: nn.Module, size: int, method: str, source: str, *,
        stage: str | None = None, keep_previous_as: str | None = None,
    ) -> Path:
        """Replace ``segmenter.pt`` (atomically) with ``net``.

        ``stage``: write the stage's own copy first, so that a run killed between the two writes
        redoes the stage from the previous stage's segmenter. ``keep_previous_as``: keep the
        segmenter being replaced under that name (PerturbGAN's encoder keeps the run's UNet).
        """
        from engine.segmenter.model import save_segmenter

        if stage is not None:
            save_segmenter(self.stage_segmenter_path(stage), net, size, method, source)
        if keep_previous_as is not None and self.segmenter_path.exists():
            write_bytes(self.path / keep_previous_as, self.segmenter_path.read_bytes())
        save_segmenter(self.segmenter_path, net, size, method, source)
        log.info("%s written (%s, %d px)", self.segmenter_path, method, size)
        return self.segmenter_path
