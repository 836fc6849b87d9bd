"""IoU of every stage's segmenter of a finished run, on its training photos and on held-out ones.

    python bench/stage_scores.py RUN_DIR --split horses|flowers|demo [--device cpu|cuda]

A stage that lowers the IoU on photos the run never saw is visible here, where a score on the
training photos alone would hide it (issue 18: the prior 0.688, the rounds after it 0.660). The
stages, in the order they ran: ``bootstrap/prior.pt`` (the label-free prior), each
``checkpoints/segmenter-STAGE.pt`` (order of ``metrics.jsonl``'s ``segmenter-source`` events, else
file time) and ``segmenter.pt`` (what the user gets). Each is scored at its own training size
(IoU at 0.5 against the dev folder's masks, used only for scoring). Prints JSON, with each
stage's ``segmenter-source`` event (agreement, sameness, whether generated pairs were used).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from splits import DevFolder, dev_folders, ensure_photos, load_split  # noqa: E402

from engine.imageio import read_mask, read_rgb  # noqa: E402
from engine.metrics import image_scores  # noqa: E402
from engine.runs.folder import RunFolder  # noqa: E402
from engine.segmenter.infer import predict_soft  # noqa: E402
from engine.segmenter.model import load_segmenter  # noqa: E402

SOURCE_EVENT = "segmenter-source"


def source_events(run_dir: Path) -> list[dict[str, Any]]:
    """``segmenter-source`` records of ``metrics.jsonl``, in order (one per segmenter stage run)."""
    path = RunFolder(run_dir).metrics_path
    if not path.is_file():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill
        if isinstance(record, dict) and record.get("event") == SOURCE_EVENT:
            events.append(record)
    return events


def stage_files(run_dir: Path) -> list[tuple[str, Path]]:
    """(stage, segmenter file) in the order the stages ran; only files that exist."""
    run = RunFolder(run_dir)
    found: list[tuple[str, Path]] = []
    if run.prior_path.is_file():
        found.append(("prior", run.prior_path))
    order = [e["stage"] for e in source_events(run_dir)]
    fits = sorted(run.checkpoints.glob("segmenter-*.pt"), key=lambda p: p.stat().st_mtime)
    by_name = {p.stem.removeprefix("segmenter-"): p for p in fits}
    for stage in [s for s in order if s in by_name] + [s for s in by_name if s not in order]:
        found.append((stage, by_name[stage]))
    if run.segmenter_path.is_file():
        found.append(("final", run.segmenter_path))
    return found


class Scorer:
    """Photos and masks of a split read once, scored against any number of segmenters."""

    def __init__(self, folder: DevFolder, split: dict[str, list[str]]) -> None:
        self.sets: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]] = {}
        for part in ("train", "heldout"):
            rows = []
            for name in split[part]:
                stem = Path(name).stem
                ignore = folder.ignore / f"{stem}.png" if folder.ignore is not None else None
                rows.append((read_rgb(folder.photos / name), read_mask(folder.masks / f"{stem}.png"),
                             read_mask(ignore) if ignore is not None and ignore.is_file() else None))
            self.sets[part] = rows

    def score(self, path: Path, device: str = "cpu") -> dict[str, Any]:
        model, info = load_segmenter(path, device)
        out: dict[str, Any] = {"size": info.size}
        with torch.no_grad():
            for part, rows in self.sets.items():
                soft = predict_soft(model, [r[0] for r in rows], info.size, device)
                ious = [image_scores((s * 255 + 0.5).astype(np.uint8), gt, ign).iou
                        for s, (_, gt, ign) in zip(soft, rows, strict=True)]
                out[f"{part}_iou"] = round(float(np.mean(ious)), 4) if ious else None
                out[f"{part}_photos"] = len(ious)
        return out


def score_run(run_dir: Path, scorer: Scorer, device: str = "cpu") -> dict[str, Any]:
    """Per-stage IoU on both parts of the split, with the stage's pair-source record."""
    events = {e["stage"]: e for e in source_events(run_dir)}
    stages = []
    for stage, path in stage_files(run_dir):
        row: dict[str, Any] = {"stage": stage, "file": str(path.relative_to(run_dir))}
        row.update(scorer.score(path, device))
        if stage in events:
            e = events[stage]
            row.update({"gan_pairs": e.get("gan_pairs"), "agreement": e.get("agreement"),
                        "sameness": e.get("sameness"), "kept_pairs": e.get("kept_pairs"),
                        "candidates": e.get("candidates")})
        stages.append(row)
    return {"run": str(run_dir), "stages": stages}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, metavar="RUN_DIR")
    ap.add_argument("--split", required=True, choices=sorted(dev_folders()))
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = ap.parse_args(argv)
    folder = dev_folders()[args.split]
    ensure_photos(folder)
    report = {"split": args.split, **score_run(args.run, Scorer(folder, load_split(args.split)),
                                                args.device)}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
