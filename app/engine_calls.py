"""The few engine calls the window makes, in one place: building configs, exports, run folders."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.config import RunConfig
from engine.control import RunControl

ProgressFn = Callable[[int, int], None]

# Previews every 200 steps suit the CLI; a window should show the GAN learning sooner.
GUI_PREVIEW_EVERY = 50


def make_config(folder: str, run_dir: str, options: dict[str, Any], **overrides: Any) -> RunConfig:
    """A RunConfig from the training panel's options; raises ValueError on bad values."""
    opts = dict(options)
    bootstrap = opts.pop("bootstrap", None)
    gan = opts.pop("gan", None)
    kwargs: dict[str, Any] = {"folder": folder, "out": run_dir,
                              "preview_every": GUI_PREVIEW_EVERY, **opts, **overrides}
    config = RunConfig(**kwargs)
    if bootstrap is not None:
        config = dataclasses.replace(
            config, pipeline=dataclasses.replace(config.pipeline, bootstrap=bool(bootstrap)))
    if gan is not None:
        config = dataclasses.replace(
            config, pipeline=dataclasses.replace(config.pipeline, gan=bool(gan)))
    return config


def read_run_config(run_dir: str) -> RunConfig:
    """Any method's run configuration (the engine's RunFolder reads it); ValueError if none."""
    from engine.runs.folder import RunFolder

    return RunFolder(run_dir).read_config()


def device_warning(requested: str) -> str | None:
    """The warning the engine gives when the requested device is not there (e.g. no CUDA)."""
    if requested == "cpu":
        return None
    from engine.device import pick_device

    return pick_device(requested)[1]


def onnx_job(run_dir: str, out: str | None = None) -> Callable[[ProgressFn, threading.Event], Any]:
    def job(progress: ProgressFn, cancel: threading.Event) -> Any:
        from engine.export.onnx import export_onnx

        progress(0, 0)
        return export_onnx(run_dir, out)

    return job


def describe_result(summary: Any) -> tuple[str, str, str | None]:
    """(message, log level, folder to open or None) for an export's return value."""
    if hasattr(summary, "written"):  # engine.export.masks.Summary
        text = (f"{summary.written} masks written, {summary.skipped} already there, "
                f"{summary.failed} failed, in {summary.seconds:.1f} s on {summary.provider} "
                f"→ {summary.out_dir}")
        if summary.cancelled:
            return f"cancelled: {text}", "warning", None
        return text, ("warning" if summary.failed else "ok"), str(summary.out_dir)
    if hasattr(summary, "max_abs_diff"):  # engine.export.onnx.ExportReport
        path = Path(summary.path)
        return (f"{path} ({summary.bytes / 1e6:.1f} MB, max difference to torch "
                f"{summary.max_abs_diff:.1e})", "ok", str(path.parent))
    return str(summary), "ok", None


def ensure_onnx(run_dir: str) -> Any:
    """The run's ONNX file, exported first when missing or older than segmenter.pt.

    Returns what ``export_masks`` takes as its model (a path here; tests pass a stand-in).
    """
    from engine.export.onnx import default_output, export_onnx, resolve_segmenter

    pt = resolve_segmenter(run_dir)
    onnx_path = default_output(pt)
    if not onnx_path.is_file() or onnx_path.stat().st_mtime < pt.stat().st_mtime:
        export_onnx(pt, onnx_path)
    return onnx_path


def masks_job(run_dir: str, in_dir: str, out_dir: str, fmt: str,
              refine: bool = False) -> Callable[[ProgressFn, threading.Event], Any]:
    def job(progress: ProgressFn, cancel: threading.Event) -> Any:
        from engine.export.masks import ExportOptions, export_masks

        model = ensure_onnx(run_dir)
        os.makedirs(out_dir, exist_ok=True)
        return export_masks(model, in_dir, out_dir, ExportOptions(format=fmt, refine=refine),
                            progress=lambda p: progress(p.processed, p.todo), cancel=cancel)

    return job


# -- method comparison (peel compare) ----------------------------------------------------------
class CancelControl(RunControl):
    """A RunControl that also stops when the job's cancel event is set (Cancel, or the window
    closing), so every trainer of the comparison ends at its next step with a checkpoint."""

    def __init__(self, cancel: threading.Event) -> None:
        super().__init__()
        self._cancel = cancel

    @property
    def stop_requested(self) -> bool:
        return self._cancel.is_set() or super().stop_requested

    def wait_if_paused(self, poll_s: float = 0.1) -> bool:
        return super().wait_if_paused(poll_s) or self.stop_requested


@dataclasses.dataclass(frozen=True)
class CompareOutcome:
    out_dir: str
    report: dict[str, Any] | None  # None: cancelled before the report was written


def compare_config(folder: str, out: str, methods: tuple[str, ...], minutes: float,
                   gt: str | None, size: int, device: str,
                   overrides: dict[str, Any] | None = None) -> Any:
    """The engine's CompareConfig from the dialog's choice; raises ValueError on bad values.

    ``overrides`` replaces any CompareConfig field (tests: steps instead of minutes, tiny nets).
    """
    from engine.compare import CompareConfig

    if gt and not os.path.isdir(gt):
        raise ValueError(f"the ground-truth folder does not exist: {gt}")
    if os.path.abspath(out) == os.path.abspath(folder):
        raise ValueError("the output folder must differ from the photo folder")
    kwargs: dict[str, Any] = {"folder": folder, "out": out, "methods": tuple(methods),
                              "minutes": minutes, "gt": gt or None, "size": size,
                              "device": device, **(overrides or {})}
    return CompareConfig(**kwargs)


def compare_job(config: Any, torch_threads: int) -> Callable[[Any, threading.Event], Any]:
    """``run_compare`` as a job: progress per method, a status note per stage, cancel = stop."""

    def job(progress: Any, cancel: threading.Event) -> CompareOutcome:
        import torch

        from engine.compare import run_compare
        from engine.events import (
            Failed,
            Finished,
            PhaseChanged,
            Preview,
            Progress,
            Started,
            WarningEvent,
        )

        note = getattr(progress, "note", lambda text, level="info": None)
        show = getattr(progress, "preview", lambda preview: None)
        seen: list[str] = []
        steps = 1000
        began: dict[str, float] = {}
        budget_s = config.minutes * 60 if config.minutes else None

        def sink(method: str, ev: object) -> None:
            if method not in seen:
                seen.append(method)
            total = (max(len(config.methods), len(seen)) + 1) * steps  # + GrabCut and the report
            done = seen.index(method) * steps
            if isinstance(ev, Started):
                began.setdefault(method, time.monotonic())
                # Each trainer sizes torch's pool to every core; leave the window its core.
                torch.set_num_threads(torch_threads)
                from engine.device import describe

                shown = describe(torch.device("cpu")) if ev.device.startswith("cpu") else ev.device
                note(f"{method}: training on {shown}")  # the threads it trains with, not had
            elif isinstance(ev, PhaseChanged):
                note(f"{method}: {ev.phase}" + (f" · {ev.detail}" if ev.detail else ""))
            elif isinstance(ev, Progress):
                # A method's share of the bar is its time budget: the stage's own fraction went
                # from 0 to 1 in every stage, so the bar fell back at each one.
                if budget_s and method in began:
                    fraction = (time.monotonic() - began[method]) / budget_s
                else:
                    fraction = ev.fraction or 0.0
                progress(done + int(min(max(fraction, 0.0), 1.0) * steps), total)
            elif isinstance(ev, Preview):
                show(ev)  # the method in training, as the Live tab shows a run
            elif isinstance(ev, WarningEvent):
                note(f"{method}: {ev.message}", "warning")
            elif isinstance(ev, Failed):
                note(f"{method} failed: {ev.error}", "error")
            elif isinstance(ev, Finished):
                progress(done + steps, total)
                note(f"{method}: {'stopped' if ev.stopped else 'trained'}; segmenting the photos")

        note(f"Comparing {', '.join(config.methods)} in {config.out}")
        progress(0, 0)
        report = run_compare(config, sink=sink, control=CancelControl(cancel))
        return CompareOutcome(str(config.out), report)

    return job


def read_compare_report(out_dir: str) -> dict[str, Any]:
    """OUT/report.json as written by ``run_compare``; raises OSError/ValueError."""
    with open(Path(out_dir) / "report.json", encoding="utf-8") as fh:
        report = json.load(fh)
    if not isinstance(report, dict) or "rows" not in report:
        raise ValueError(f"{out_dir}: not a comparison report")
    return report
