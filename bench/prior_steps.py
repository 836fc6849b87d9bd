"""How many prior fit steps does a folder need before the label-free prior beats GrabCut?

    python bench/prior_steps.py --split demo horses [--steps 25 50 100 200 400] [--size 32]
        [--self-train 50 100 200 400] [--out DIR]

The plan (``engine/train/plan.py``) promises "about N minutes here" for a segmenter better than
GrabCut; N is built from this machine's rates and a step count, and this bench measures that step
count. For each dev folder (``bench/splits/``): GrabCut every photo (as ``peel baseline grabcut``
does, one process), score GrabCut's masks against the ground truth on the training and held-out
photos, then train the prior (the bootstrap's UNet, batch, sampler and pair filter) on the
training photos' GrabCut masks for k steps (its first half coarse, as the bootstrap fits), from the same seed, for each k, and score it the same
way. Then the self-training round the plan puts after the prior: the prior of ``PRIOR_STEPS``
steps labels the training photos, GrabCut snaps those labels to edges (``refined_labels``), and a
copy of the prior is fitted on them for each k of ``--self-train`` steps (as a segmenter stage
does), scored the same way. Also reports seconds per GrabCut photo and per fit step (the rates). Run it pinned to one core
(``taskset -c 0``); it sets one torch thread. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from splits import dev_folders, ensure_photos, link_training_photos, load_split  # noqa: E402
from stage_scores import Scorer  # noqa: E402

from engine.control import RunControl  # noqa: E402
from engine.data import load_folder  # noqa: E402
from engine.imageio import read_mask  # noqa: E402
from engine.metrics import image_scores  # noqa: E402
from engine.nets.unet import UNet  # noqa: E402
from engine.segmenter import bootstrap  # noqa: E402
from engine.segmenter.fit import COARSE_SHARE, fit_unet  # noqa: E402
from engine.segmenter.grabcut_cache import compute_one  # noqa: E402
from engine.segmenter.model import save_segmenter  # noqa: E402
from engine.segmenter.pairs import filter_pairs  # noqa: E402
from engine.segmenter.relabel import refined_labels  # noqa: E402
from engine.train.plan import PRIOR_STEPS  # noqa: E402
from engine.train.segmenter_stages import FINETUNE_LR  # noqa: E402


def drain(gen: Any) -> Any:
    """Run an event generator to its end; its return value."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def grabcut_all(photos: Path, names: list[str],
                out: Path) -> tuple[dict[str, np.ndarray], float | None]:
    """GrabCut masks of ``names`` (as the bootstrap makes them), and seconds per photo computed
    (None when every mask was already in ``out``)."""
    out.mkdir(parents=True, exist_ok=True)
    masks: dict[str, np.ndarray] = {}
    seconds, computed = 0.0, 0
    for name in names:
        dst = out / f"{Path(name).stem}.png"
        if not dst.exists():  # an earlier run's mask (same photo, same settings) is reused
            t0 = time.perf_counter()
            compute_one((str(photos / name), str(dst)))
            seconds, computed = seconds + time.perf_counter() - t0, computed + 1
        masks[name] = read_mask(dst)
    return masks, round(seconds / computed, 4) if computed else None


def grabcut_scores(scorer: Scorer, split: dict[str, list[str]],
                   masks: dict[str, np.ndarray]) -> dict[str, float]:
    out = {}
    for part, rows in scorer.sets.items():
        ious = [image_scores(masks[name], gt, ign).iou
                for name, (_, gt, ign) in zip(split[part], rows, strict=True)]
        out[f"{part}_iou"] = round(float(np.mean(ious)), 4)
    return out


def prior_rows(cache: Any, masks: dict[str, np.ndarray], size: int, ks: list[int],
               scorer: Scorer, work: Path) -> list[dict[str, Any]]:
    """The prior trained for each k steps on the training photos' GrabCut masks, scored."""
    by_index = {i: masks[Path(p).name] for i, p in enumerate(cache.paths)}
    images, mask_arr = bootstrap._training_arrays(cache, by_index)
    keep = filter_pairs(torch.empty(0), torch.from_numpy(mask_arr).float().div_(255.0).unsqueeze(1))
    if int(keep.sum()) > 0:
        images, mask_arr = images[keep.numpy()], mask_arr[keep.numpy()]
    rows = []
    for k in ks:
        torch.manual_seed(0)
        net = UNet(bootstrap.prior_config())
        sample = bootstrap.make_sampler(images, mask_arr, size)
        t0 = time.perf_counter()
        net = drain(fit_unet(sample, net, torch.device("cpu"), None, k, bootstrap.BATCH,
                             RunControl(), "prior", 0, coarse_share=COARSE_SHARE))
        fit_s = time.perf_counter() - t0
        path = work / f"prior-{k}.pt"
        save_segmenter(path, net, size=size, method=bootstrap.METHOD, source="train")
        score = scorer.score(path)
        rows.append({"steps": k, "fit_s": round(fit_s, 1), "step_s": round(fit_s / k, 4),
                     "train_iou": score["train_iou"], "heldout_iou": score["heldout_iou"]})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def self_training_rows(cache: Any, prior_path: Path, size: int, ks: list[int], scorer: Scorer,
                       work: Path) -> list[dict[str, Any]]:
    """A copy of the prior fitted for each k steps on its own GrabCut-snapped labels, scored."""
    import copy

    from engine.segmenter.model import load_segmenter

    prior = load_segmenter(prior_path, "cpu")[0]
    t0 = time.perf_counter()
    labels = drain(refined_labels(cache, prior, size, torch.device("cpu"), RunControl(),
                                  "segmenter", 0))
    relabel_s = time.perf_counter() - t0
    rows = []
    for k in ks:
        torch.manual_seed(0)
        net = copy.deepcopy(prior).train().requires_grad_(True)
        sample = bootstrap.make_sampler(*labels, size, seed=11)
        t0 = time.perf_counter()
        # As a segmenter stage fits (segmenter_stages.segmenter_stage): until 2026-12-05 these
        # rows fitted at the from-scratch rate with plain BCE, which read the unlabelled pixels
        # (relabel.IGNORE) as 0.5 targets.
        net = drain(fit_unet(sample, net, torch.device("cpu"), None, k, 32, RunControl(),
                             "segmenter", 0, lr=FINETUNE_LR, confidence_weighted=True))
        fit_s = time.perf_counter() - t0
        path = work / f"self-{k}.pt"
        save_segmenter(path, net, size=size, method="self-training", source="train")
        score = scorer.score(path)
        rows.append({"steps": k, "relabel_s_per_photo": round(relabel_s / len(cache), 4),
                     "fit_s": round(fit_s, 1), "train_iou": score["train_iou"],
                     "heldout_iou": score["heldout_iou"]})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", nargs="+", default=["demo", "horses"], choices=sorted(dev_folders()))
    ap.add_argument("--steps", type=int, nargs="+", default=[25, 50, 100, 200, 400])
    ap.add_argument("--self-train", type=int, nargs="*", default=[50, 100, 200, 400])
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "peel-prior-steps")
    args = ap.parse_args()
    torch.set_num_threads(1)
    load_start = os.getloadavg()
    report: dict[str, Any] = {"size": args.size, "folders": []}
    for name in args.split:
        folder = dev_folders()[name]
        ensure_photos(folder)
        split = load_split(name)
        work = args.out / name
        train_dir = link_training_photos(folder, split, work / "train")
        masks, grabcut_s = grabcut_all(folder.photos, split["train"] + split["heldout"],
                                       work / "grabcut")
        scorer = Scorer(folder, split)
        entry = {"folder": name, "train_photos": len(split["train"]),
                 "heldout_photos": len(split["heldout"]),
                 "grabcut_s_per_photo": grabcut_s,
                 "grabcut": grabcut_scores(scorer, split, masks)}
        print(json.dumps(entry), file=sys.stderr, flush=True)
        cache = load_folder(train_dir, args.size)
        entry["prior"] = prior_rows(cache, masks, args.size, args.steps, scorer, work)
        if args.self_train:
            prior = work / f"prior-{PRIOR_STEPS}.pt"
            if not prior.exists():
                prior_rows(cache, masks, args.size, [PRIOR_STEPS], scorer, work)
            entry["self_training"] = {"prior_steps": PRIOR_STEPS, "rows": self_training_rows(
                cache, prior, args.size, args.self_train, scorer, work)}
        report["folders"].append(entry)
    report["load_start"], report["load_end"] = load_start, os.getloadavg()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
