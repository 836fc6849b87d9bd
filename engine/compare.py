"""Comparing Peel's segmentation methods on one folder with ground truth (``peel compare``).

Every method gets the same budget and is scored the same way: its ``segmenter.pt`` segments the
folder's photos (``predict_soft``, full size) and ``engine.metrics`` scores the masks against the
ground truth. GrabCut from a centred rectangle is always scored beside them: it needs no training,
and a learned method that does not beat it is not worth its minutes. The ground truth is used only
for scoring, never for training.

Without ground truth (``gt=None``: a user's own folder has no masks) nothing is scored: the same
few photos are segmented by every method and GrabCut and shown side by side in the figure.

Runs live in ``OUT/<method>/``; a run that already has ``segmenter.pt`` is reused, so a comparison
can be extended or re-scored without training again; one with checkpoints but no segmenter (an
interrupted comparison) is resumed. ``latentdir`` needs a layered-GAN generator:
it reuses ``OUT/perturbgan`` (else ``OUT/ilgan``), training perturbgan first when neither exists.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engine.atomic import write_bytes, write_json, write_text
from engine.baselines.grabcut import grabcut_mask
from engine.control import RunControl
from engine.events import Event, Failed, Finished
from engine.imageio import ImageReadError, read_rgb, scan_images
from engine.methods.registry import DEFAULT_METHOD, get, layered_gan_names, method_names
from engine.metrics import evaluate_folders

log = logging.getLogger(__name__)

METHODS = method_names()
BASELINE = "grabcut"
FIGURE_PHOTOS = 6
THUMB = 112  # figure cell height in pixels
# The default layered GAN first (perturbgan: its generator separates layers), then the others.
GAN_FOR_LATENTDIR = (DEFAULT_METHOD, *(m for m in layered_gan_names() if m != DEFAULT_METHOD))
# Accepted but not compared by default: perturbgan with PerturbGAN's own encoder as segmenter.
EXTRA_METHODS = ("perturbgan-encoder",)

EventSink = Callable[[str, Event], None]


@dataclass(frozen=True)
class CompareConfig:
    folder: str
    gt: str | None  # None: no scores, only the side-by-side figure
    out: str
    methods: tuple[str, ...] = METHODS
    minutes: float | None = 10.0  # per method
    steps: int | None = None  # per method, instead of minutes (reproducible, for tests/benches)
    ignore: str | None = None
    size: int = 64
    device: str = "auto"
    seed: int = 0
    # Extra keyword arguments per method's run config (tests use tiny nets); not on the CLI.
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS + EXTRA_METHODS]
        if unknown:
            raise ValueError(f"unknown method(s) {', '.join(unknown)} (choose from {', '.join(METHODS + EXTRA_METHODS)})")
        if not self.methods:
            raise ValueError("no methods to compare")
        if (self.minutes is None) == (self.steps is None):
            raise ValueError("give exactly one of minutes or steps")


@dataclass
class Row:
    method: str
    status: str  # "trained" | "reused" | "failed" | "baseline"
    scores: dict[str, float] = field(default_factory=dict)
    train_s: float | None = None
    note: str = ""


# -- training -----------------------------------------------------------------------------------
def _events_for(method: str, cfg: CompareConfig, run_dir: Path, gan_run: Path | None,
                control: RunControl) -> Iterator[Event]:
    """Every method runs through the registry's entry (``runner.train``) from one RunConfig.

    ``overrides[method]`` keys that name a field of the method's own settings section go there
    (e.g. latentdir's ``batch`` is its direction batch), the others replace RunConfig fields.
    """
    from engine.config import RunConfig
    from engine.runs.checkpoint import list_checkpoints
    from engine.train.runner import train

    name = method.removesuffix("-encoder")
    spec = get(name)
    resume = bool(list_checkpoints(run_dir))  # an interrupted run continues where it stopped
    config = RunConfig(folder=cfg.folder, out=str(run_dir), method=name, size=cfg.size,
                       device=cfg.device, seed=cfg.seed, minutes=cfg.minutes, steps=cfg.steps)
    over = dict(cfg.overrides.get(method, {}))
    # The method's own section may be given whole (a dataclass) or field by field; a whole one
    # must not be replaced by the default section below.
    section = over.pop(spec.settings, getattr(config, spec.settings))
    if method == "perturbgan-encoder":
        over["segmenter"] = "encoder"
    if gan_run is not None:
        over["generator"] = str(gan_run)
    own = {f.name for f in fields(section)}
    section = replace(section, **{k: v for k, v in over.items() if k in own})
    config = replace(config, **{k: v for k, v in over.items() if k not in own})
    # A comparison of methods keeps each method's GAN at any budget (a short one would otherwise
    # run the same no-GAN pipeline for every layered GAN: engine/train/plan.py, gan_decision).
    config = replace(config, pipeline=replace(config.pipeline, min_gan_minutes=0.0))
    return train(replace(config, **{spec.settings: section}), control, resume=resume)


def _train(method: str, cfg: CompareConfig, run_dir: Path, gan_run: Path | None,
           sink: EventSink | None, control: RunControl) -> tuple[float, str | None]:
    """Run one method to the end; returns (seconds, error or None)."""
    start = time.perf_counter()
    error = None
    finished = False
    for ev in _events_for(method, cfg, run_dir, gan_run, control):
        if sink is not None:
            sink(method, ev)
        if isinstance(ev, Failed):
            error = ev.error
        elif isinstance(ev, Finished):
            finished = True
    seconds = time.perf_counter() - start
    if error is None and not finished:
        error = "training ended without finishing"
    if error is None and not (run_dir / "segmenter.pt").exists():
        error = "training finished without a segmenter"
    write_json(run_dir / "compare.json", {"method": method, "train_s": seconds, "error": error})
    return seconds, error


def _train_s(run_dir: Path) -> float | None:
    import json

    path = run_dir / "compare.json"
    try:
        return float(json.loads(path.read_text(encoding="utf-8"))["train_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


# -- scoring ------------------------------------------------------------------------------------
def _photos_with_gt(folder: Path, gt: Path) -> list[Path]:
    stems = {p.stem for p in scan_images(gt)}
    return [p for p in scan_images(folder) if p.stem in stems]


def _encode_png(mask_u8: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", mask_u8)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _segment_folder(segmenter: Path, photos: list[Path], out_dir: Path, device: str) -> None:
    """Soft masks (8-bit) of every photo, with the method's own segmenter, at full size."""
    import torch

    from engine.device import pick_device
    from engine.segmenter.infer import predict_soft
    from engine.segmenter.model import load_segmenter

    dev, _ = pick_device(device)
    net, info = load_segmenter(segmenter, dev)
    for start in range(0, len(photos), 16):
        chunk, images = [], []
        for p in photos[start : start + 16]:
            try:
                images.append(read_rgb(p))
                chunk.append(p)
            except ImageReadError as exc:
                log.warning("skipping %s: %s", exc.path, exc.reason)
        with torch.no_grad():
            masks = predict_soft(net, images, info.size, dev)
        for p, m in zip(chunk, masks, strict=True):
            write_bytes(out_dir / f"{p.stem}.png", _encode_png((m * 255 + 0.5).astype(np.uint8)))


def _grabcut_folder(photos: list[Path], out_dir: Path, control: RunControl) -> None:
    for p in photos:
        if control.stop_requested:
            return
        dst = out_dir / f"{p.stem}.png"
        if dst.exists():
            continue
        try:
            write_bytes(dst, _encode_png(grabcut_mask(read_rgb(p))))
        except ImageReadError as exc:
            log.warning("skipping %s: %s", exc.path, exc.reason)


def _scores(result: dict[str, Any]) -> dict[str, float]:
    keys = ("iou", "miou", "accuracy", "max_fbeta")
    return {k: float(result[k]) for k in keys if k in result} | {"count": float(result["count"])}


# -- the comparison -----------------------------------------------------------------------------
def _spread(photos: list[Path], n: int) -> list[Path]:
    """``n`` photos spread evenly over the (sorted) list, so the figure is not all one corner."""
    return [photos[i] for i in np.linspace(0, len(photos) - 1, min(n, len(photos))).round().astype(int)]


def run_compare(cfg: CompareConfig, sink: EventSink | None = None,
                control: RunControl | None = None) -> dict[str, Any] | None:
    """Train (or reuse) each method, score all of them and GrabCut, write OUT/report.md + .png.

    Without ground truth only the figure's photos are segmented and the rows carry no scores.
    A stop request on ``control`` stops the method training now at its next step (it keeps a
    checkpoint, so the same comparison resumes it later); then nothing more runs, no report is
    written and None is returned.
    """
    control = control or RunControl()
    out, folder = Path(cfg.out), Path(cfg.folder)
    gt = Path(cfg.gt) if cfg.gt else None
    if gt is not None:
        photos = _photos_with_gt(folder, gt)
        if not photos:
            raise ValueError(f"no photo in {folder} has a ground-truth mask (same name) in {gt}")
        shown = _spread(photos, FIGURE_PHOTOS)
    else:
        shown = photos = _spread(scan_images(folder), FIGURE_PHOTOS)
        if not photos:
            raise ValueError(f"no photos in {folder}")
    rows: list[Row] = []
    # Methods that reuse another run's generator (latentdir) go last: that run comes first.
    order = sorted(cfg.methods, key=_needs_generator)
    for method in order:
        if control.stop_requested:
            log.info("comparison stopped before %s; no report written", method)
            return None
        run_dir = out / method
        gan_run = None
        if _needs_generator(method):
            gan_run = _gan_for_latentdir(cfg, out, rows, sink, control)
            if gan_run is None:
                rows.append(Row(method, "failed", note="no layered-GAN run to reuse"))
                continue
        if (run_dir / "segmenter.pt").exists():
            log.info("%s: reusing %s", method, run_dir / "segmenter.pt")
            row = Row(method, "reused", train_s=_train_s(run_dir))
        else:
            seconds, error = _train(method, cfg, run_dir, gan_run, sink, control)
            row = Row(method, "failed" if error else "trained", train_s=seconds, note=error or "")
        if control.stop_requested:
            log.info("comparison stopped during %s; no report written", method)
            return None
        if gan_run is not None:
            row.note = (row.note + "; " if row.note else "") + f"generator of {gan_run.name}"
        if row.status != "failed":
            masks = run_dir / "masks"
            _segment_folder(run_dir / "segmenter.pt", photos, masks, cfg.device)
            if gt is not None:
                row.scores = _scores(evaluate_folders(masks, gt, cfg.ignore))
        rows.append(row)

    t0 = time.perf_counter()
    _grabcut_folder(photos, out / BASELINE / "masks", control)
    if control.stop_requested:
        return None
    base_scores = _scores(evaluate_folders(out / BASELINE / "masks", gt, cfg.ignore)) if gt else {}
    base = Row(BASELINE, "baseline", base_scores, train_s=time.perf_counter() - t0,
               note="no training; centred rectangle, 5 iterations")
    rows.append(base)
    by_name = {r.method: r for r in rows}
    rows = [by_name[m] for m in (*cfg.methods, BASELINE) if m in by_name]

    figure = out / "report.png"
    _write_figure(figure, shown, gt, out, [r.method for r in rows if r.status != "failed"])
    report = {
        "folder": str(folder), "gt": str(gt) if gt else None, "ignore": cfg.ignore,
        "images": len(photos), "scored": gt is not None,
        "budget": {"minutes_per_method": cfg.minutes, "steps_per_method": cfg.steps},
        "size": cfg.size, "device": _device_text(cfg.device),
        "rows": [r.__dict__ for r in rows],
    }
    write_json(out / "report.json", report)
    write_text(out / "report.md", _markdown(report, rows, figure.name))
    return report


def _needs_generator(method: str) -> bool:
    return method in METHODS and get(method).needs is not None


def _gan_for_latentdir(cfg: CompareConfig, out: Path, rows: list[Row], sink: EventSink | None,
                       control: RunControl) -> Path | None:
    """A finished layered-GAN run in OUT to take the generator from (trains perturbgan if none)."""
    for name in GAN_FOR_LATENTDIR:
        if (out / name / "segmenter.pt").exists():
            return out / name
    gan = GAN_FOR_LATENTDIR[0]
    if gan in cfg.methods:
        return None  # it was tried above and failed
    log.info("latentdir: no finished perturbgan/ilgan run in %s; training %s first", out, gan)
    _, error = _train(gan, cfg, out / gan, None, sink, control)
    return None if error else out / gan


def _device_text(device: str) -> str:
    from engine.device import describe, pick_device

    return describe(pick_device(device)[0])


def _markdown(report: dict[str, Any], rows: list[Row], figure: str) -> str:
    budget = report["budget"]
    spent = (f"{budget['minutes_per_method']:g} min per method" if budget["minutes_per_method"]
             else f"{budget['steps_per_method']} steps per method")
    if report["gt"]:
        photos = (f"Photos: `{report['folder']}` ({report['images']} with ground truth in "
                  f"`{report['gt']}`)" + (f", ignore masks `{report['ignore']}`" if report["ignore"] else "") + ".")
        scoring = ["Scores: per-image IoU, mIoU and accuracy at threshold 0.5, averaged; maxF with beta^2 = 0.3.",
                   "The ground truth is used only for these scores, never for training."]
    else:
        photos = f"Photos: `{report['folder']}`; no ground truth, so no scores: compare the masks in the figure."
        scoring = []
    lines = [
        "# Peel method comparison",
        "",
        photos,
        f"Budget: {spent}; training size {report['size']} px; device {report['device']}.",
        *scoring,
        "",
        "| method | IoU | mIoU | accuracy | maxF | train time | status | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s = r.scores
        cells = [f"{s[k]:.3f}" if k in s else "—" for k in ("iou", "miou", "accuracy", "max_fbeta")]
        t = "—" if r.train_s is None else f"{r.train_s / 60:.1f} min"
        lines.append(f"| {r.method} | {' | '.join(cells)} | {t} | {r.status} | {r.note} |")
    lines += [
        "",
        "`latentdir` trains no GAN: it reuses the generator of the layered-GAN run named in its notes "
        "(its train time is only the direction search and the UNet fit).",
        "",
        f"![photos segmented by each method]({figure})",
        "",
        "Figure: one row per photo; columns: photo, " + ("ground truth, " if report["gt"] else "")
        + "then each method's mask "
        "(object kept, background dimmed, outline in red).",
        "",
    ]
    return "\n".join(lines)


def _overlay(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    obj = (mask >= 128)[..., None]
    out = np.where(obj, rgb, (rgb * 0.3).astype(np.uint8))
    contours, _ = cv2.findContours(obj[..., 0].astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.ascontiguousarray(out)
    cv2.drawContours(out, contours, -1, (255, 40, 40), 1)
    return out


def _write_figure(path: Path, photos: list[Path], gt: Path | None, out: Path, methods: list[str]) -> None:
    from engine.imageio import read_mask

    gts = {p.stem: p for p in scan_images(gt)} if gt is not None else None
    header = ["photo", *(["ground truth"] if gts is not None else []), *methods]
    rows = []
    for p in photos:
        rgb = read_rgb(p)
        h, w = rgb.shape[:2]
        tw = max(1, round(w * THUMB / h))
        small = cv2.resize(rgb, (tw, THUMB), interpolation=cv2.INTER_AREA)

        def cell(mask_path: Path, small: np.ndarray = small, tw: int = tw) -> np.ndarray:
            try:
                m = read_mask(mask_path)
            except ImageReadError:
                return np.zeros_like(small)
            return _overlay(small, cv2.resize(m, (tw, THUMB), interpolation=cv2.INTER_LINEAR))

        truth = [cell(gts[p.stem])] if gts is not None else []
        cells = [small, *truth] + [cell(out / m / "masks" / f"{p.stem}.png") for m in methods]
        rows.append(cells)
    col_w = [max(r[c].shape[1] for r in rows) for c in range(len(header))]
    gap, top = 4, 30  # header text large enough to stay legible when a viewer scales it down
    width = sum(col_w) + gap * (len(col_w) + 1)
    height = top + len(rows) * (THUMB + gap) + gap
    canvas = np.full((height, width, 3), 255, np.uint8)
    x = gap
    for c, name in enumerate(header):
        cv2.putText(canvas, name[:12], (x, 21), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
        for r, cells in enumerate(rows):
            img = cells[c]
            y = top + r * (THUMB + gap)
            canvas[y : y + THUMB, x : x + img.shape[1]] = img
        x += col_w[c] + gap
    ok, png = cv2.imencode(".png", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("could not encode the comparison figure")
    write_bytes(path, png.tobytes())
