"""The state a layered-GAN run's stages share, and its checkpoint form.

``StageContext`` is public on purpose: a stage (``gan_stage``, ``segmenter_stages``, PerturbGAN's
encoder stage) is a function of the context and its ``Stage``, and may read and advance it. The run
state goes to a checkpoint with ``to_payload`` and comes back with ``restore``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.config import RunConfig
from engine.control import RunControl
from engine.data import RandomCropDataset
from engine.events import CheckpointSaved
from engine.loop import RunClock
from engine.methods import LayeredGan
from engine.parallel import distributed
from engine.runs import checkpoint as ckpt
from engine.runs.folder import RunFolder
from engine.runs.metrics_log import MetricsLog
from engine.train.collapse import MaskStats, Verdict
from engine.train.plan import Measured, Stage
from engine.train.size_floor import SizeFloor


class RunError(Exception):
    """A failure with a message meant for the user (shown as is, without the exception type)."""


class StageContext:
    """One layered-GAN run in progress: config, device, data, nets, counters, RNGs."""

    def __init__(self, config: RunConfig, control: RunControl) -> None:
        self.config = config
        self.control = control
        self.clock = RunClock(control)  # started now: setup counts against --minutes too
        self.run_dir = Path(config.out)
        self.folder = RunFolder(self.run_dir)
        self.metrics: Any = MetricsLog(self.folder.metrics_path)
        self.device = torch.device("cpu")
        self.threads_note = ""  # how the thread count was chosen, when it was timed
        self.dataset: RandomCropDataset | None = None
        self.stages: list[Stage] = []
        self.measured: Measured | None = None  # the rates the plan was built from (--minutes)
        # The run's global step: every stage's steps count (GAN, prior and segmenter fits, the
        # encoder), so events, metrics.jsonl, checkpoints and previews number one timeline.
        self.step = 0
        # Of those, the steps taken outside GAN stages: the GAN's own count (``gan_steps``) drives
        # the collapse guard's grace and the --steps plan's GAN end steps.
        self.non_gan_steps = 0
        self.stage_index = 0
        self.stage_elapsed = 0.0
        self.stage_start_step = 0
        self.restarts = 0
        # Optional stages that failed and were left out, where (plan index) and with how many
        # seconds of theirs going to the later stages: saved so a resume plans the same run.
        self.dropped: list[str] = []
        self.dropped_at: int | None = None
        self.freed_s = 0.0
        self.seed = config.seed
        # Learning rates as a fraction of the method's: halved at each non-finite loss, saved in
        # checkpoints so that a resumed run keeps the lower rate.
        self.lr_scale = 1.0
        self.method: LayeredGan | None = None
        self.segmenter: Any = None  # the UNet used for L_bg in the current GAN stage
        self.floor: SizeFloor | None = None  # from the segmenter, for the current GAN stage
        self.prior: Any = None  # the bootstrap prior: the independent judge of layer assignment
        self.last_stats: MaskStats | None = None
        self.last_verdict: tuple[int, Verdict] | None = None
        self.preview_codes = torch.empty(0)
        self.guard_codes = torch.empty(0)
        self.data_rng = np.random.default_rng(config.seed)

    def reseed(self, seed: int) -> None:
        """Every RNG the stages draw from, from ``seed``."""
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        self.data_rng = np.random.default_rng(seed)

    def to_payload(self) -> dict[str, Any]:
        """Everything a resume needs, as plain data (``torch.load(weights_only=True)`` reads it)."""
        assert self.method is not None
        return {
            "config": self.config.to_dict(),
            "step": self.step,
            "stage_index": self.stage_index,
            "stage": self.stages[min(self.stage_index, len(self.stages) - 1)].name,
            "stage_elapsed": self.stage_elapsed,
            "stage_start_step": self.stage_start_step,
            "non_gan_steps": self.non_gan_steps,
            "restarts": self.restarts,
            "seed": self.seed,
            "lr_scale": self.lr_scale,
            "dropped": list(self.dropped),
            "dropped_at": -1 if self.dropped_at is None else self.dropped_at,
            "freed_s": self.freed_s,
            "run_elapsed": self.clock.elapsed_s(),
            "measured": None if self.measured is None else self.measured.to_record(),
            "method": self.method.state_dict(),
            "rng": ckpt.capture_rng(self.data_rng),
        }

    def restore(self, payload: dict[str, Any]) -> None:
        """The inverse of ``to_payload``: continue where the checkpoint was written."""
        assert self.method is not None
        self.method.load_state_dict(payload["method"])
        ckpt.restore_rng(payload["rng"], self.data_rng)
        self.clock.before_s = float(payload.get("run_elapsed", 0.0))
        at = int(payload.get("dropped_at", -1))
        if at >= 0:
            self.drop_from(at, float(payload.get("freed_s", 0.0)))
        self.step = int(payload["step"])
        self.stage_index = min(int(payload["stage_index"]), len(self.stages))
        self.stage_elapsed = float(payload["stage_elapsed"])
        self.stage_start_step = int(payload["stage_start_step"])
        self.non_gan_steps = int(payload.get("non_gan_steps", 0))  # older runs: GAN steps only
        self.restarts = int(payload["restarts"])
        self.seed = int(payload["seed"])
        self.lr_scale = float(payload.get("lr_scale", 1.0))
        self.apply_lr_scale()

    def gan_steps(self) -> int:
        """GAN steps trained so far, over every GAN stage (the global step less the others')."""
        return self.step - self.non_gan_steps

    def end_stage(self, step: int) -> None:
        """A non-GAN stage ended at global ``step``: its steps join the run's count."""
        self.non_gan_steps += step - self.step
        self.step = step

    def drop_from(self, index: int, freed_s: float) -> list[str]:
        """Leave out the optional stage at ``index`` and the later GAN stages (``drop_optional``)."""
        from engine.train.plan import drop_optional

        self.stages, names = drop_optional(self.stages, index, freed_s)
        self.dropped, self.dropped_at, self.freed_s = names, index, freed_s
        return names

    def gan_trained(self) -> bool:
        """Whether a GAN stage ran before the current one and was not dropped: only then may a
        segmenter stage learn from the generator's pairs."""
        return not self.dropped and any(s.kind == "gan" for s in self.stages[: self.stage_index])

    def checkpoint(self, good: bool) -> CheckpointSaved:
        """Save the run state as the newest rolling checkpoint (rank 0 only writes)."""
        assert self.method is not None
        payload = self.to_payload()
        if not distributed.is_main():
            return CheckpointSaved(self.step, "", good=good)
        path = ckpt.save_rolling(self.run_dir, self.step, payload, self.config.keep_checkpoints, good)
        return CheckpointSaved(self.step, str(path), good=good)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"steps": self.step, "restarts": self.restarts}
        if self.dropped:
            out["dropped"] = list(self.dropped)
        if self.last_stats is not None:
            out.update({f"mask_{k}": v for k, v in self.last_stats.to_dict().items()})
        return out

    def apply_lr_scale(self) -> None:
        """Set both optimisers' learning rates to ``lr_scale`` times the method's own."""
        assert self.method is not None
        lr_g, lr_d, _ = self.method.optimiser_settings()
        for opt, lr in ((self.method.opt_g, lr_g), (self.method.opt_d, lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr * self.lr_scale
