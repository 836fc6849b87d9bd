"""The few engine calls the window makes, in one place: building configs, exports, run folders."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.config import RunConfig

ProgressFn = Callable[[int, int], None]

# Previews every 200 steps suit the CLI; a window should show the GAN learning sooner.
GUI_PREVIEW_EVERY = 50


def make_config(folder: str, run_dir: str, options: dict[str, Any], **overrides: Any) -> RunConfig:
    """A RunConfig from the training panel's options; raises ValueError on bad values."""
    opts = dict(options)
    bootstrap = opts.pop("bootstrap", None)
    kwargs: dict[str, Any] = {"folder": folder, "out": run_dir,
                              "preview_every": GUI_PREVIEW_EVERY, **opts, **overrides}
    config = RunConfig(**kwargs)
    if bootstrap is not None:
        config = dataclasses.replace(
            config, pipeline=dataclasses.replace(config.pipeline, bootstrap=bool(bootstrap)))
    return config


def read_run_config(run_dir: str) -> RunConfig:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ValueError("no config.json (not a Peel run folder)")
    with open(path, encoding="utf-8") as fh:
        return RunConfig.from_dict(json.load(fh))


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
