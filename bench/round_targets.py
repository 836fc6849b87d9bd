"""Which labels should a self-training round learn from? Round variants from one saved prior.

    python bench/round_targets.py --split horses --work DIR --prior prior-400.pt [--size 32]
        [--steps 400] [--variants snapped teacher hard whole rect mixed]

``DIR`` is a ``bench/prior_steps.py --out`` folder's per-split directory (its ``grabcut/`` masks
and the saved priors). From the prior, each variant fits a copy for ``--steps`` steps exactly as a
segmenter stage does (``FINETUNE_LR`` unless ``--lr``, the confidence-weighted loss, batch 32, one seed), then
scores it on the split's training and held-out photos (ground truth for scoring only):

- ``snapped``: the pipeline's targets (``relabel.self_training_target``: the teacher's decided
  pixels where GrabCut agrees, GrabCut's label in its undecided band, no label elsewhere);
- ``teacher``: the teacher's decided pixels only (no GrabCut);
- ``hard``: the teacher's thresholded masks (plain BCE);
- ``whole``: GrabCut started from the teacher's mask, taken whole;
- ``rect``: the prior's own labels again (GrabCut from the centred rectangle): a second fit
  with no self-training at all, which tells the cost of the second fit itself;
- ``mixed``: half of each batch ``rect``, half ``snapped``.

Also prints the IoU of the ``hard`` and ``whole`` label sets with the ground truth (at the
cache's side), so a round that gets better labels and still loses is seen. Run pinned to one
core (``taskset -c N``); one torch thread. JSON lines on stdout.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prior_steps import drain  # noqa: E402
from splits import dev_folders, link_training_photos, load_split  # noqa: E402
from stage_scores import Scorer  # noqa: E402

from engine.control import RunControl  # noqa: E402
from engine.data import load_folder, square_resize  # noqa: E402
from engine.imageio import read_mask  # noqa: E402
from engine.segmenter import bootstrap, relabel  # noqa: E402
from engine.segmenter.fit import fit_unet  # noqa: E402
from engine.segmenter.grabcut_cache import refine_centre  # noqa: E402
from engine.segmenter.infer import predict_soft  # noqa: E402
from engine.segmenter.model import load_segmenter, save_segmenter  # noqa: E402
from engine.train.segmenter_stages import FINETUNE_LR  # noqa: E402

VARIANTS = ("snapped", "teacher", "hard", "whole", "rect", "mixed")


def binary(mask: np.ndarray, side: int) -> np.ndarray:
    return np.where(square_resize(mask, side) >= 128, 255, 0).astype(np.uint8)


def label_iou(labels: np.ndarray, gt: np.ndarray) -> float:
    a, b = labels >= 128, gt >= 128
    return round(float(np.mean([np.count_nonzero(x & y) / max(1, np.count_nonzero(x | y))
                                for x, y in zip(a, b, strict=True)])), 4)


def label_sets(cache: Any, prior: Any, size: int, work: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every variant's (images, targets) at the cache's side."""
    side = cache.images.shape[1]
    images, targets = drain(relabel.refined_labels(cache, prior, size, torch.device("cpu"),
                                                   RunControl(), "round", 0))
    probs = predict_soft(prior, list(cache.images), size, "cpu", batch=32)
    soft = [(np.clip(p, 0, 1) * 255 + 0.5).astype(np.uint8) for p in probs]
    hard = np.stack([np.where(s >= 128, 255, 0).astype(np.uint8) for s in soft])
    whole = []
    for k, (path, s) in enumerate(zip(cache.paths, soft, strict=True)):
        _, mask, _ = refine_centre((str(path), s))
        whole.append(hard[k] if mask is None else binary(mask, side))
    rect = np.stack([binary(read_mask(work / "grabcut" / f"{Path(p).stem}.png"), side)
                     for p in cache.paths])
    return {"snapped": (images, targets),
            "teacher": (cache.images, np.stack([relabel.self_training_target(s, None) for s in soft])),
            "hard": (cache.images, hard), "whole": (cache.images, np.stack(whole)),
            "rect": (cache.images, rect)}


def sampler(variant: str, sets: dict[str, tuple[np.ndarray, np.ndarray]], size: int) -> Any:
    if variant != "mixed":
        return bootstrap.make_sampler(*sets[variant], size, seed=11)
    a = bootstrap.make_sampler(*sets["rect"], size, seed=11)
    b = bootstrap.make_sampler(*sets["snapped"], size, seed=12)

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x1, m1 = a(n // 2)
        x2, m2 = b(n - n // 2)
        return torch.cat([x1, x2]), torch.cat([m1, m2])

    return sample


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", required=True, choices=sorted(dev_folders()))
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--prior", required=True, help="a prior file in --work, e.g. prior-400.pt")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--lr", type=float, default=FINETUNE_LR,
                    help="the fit's peak rate (default: a segmenter stage's FINETUNE_LR)")
    ap.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    args = ap.parse_args()
    torch.set_num_threads(1)
    folder, split = dev_folders()[args.split], load_split(args.split)
    cache = load_folder(link_training_photos(folder, split, args.work / "train"), args.size)
    scorer = Scorer(folder, split)
    prior = load_segmenter(args.work / args.prior, "cpu")[0]
    print(json.dumps({"prior": args.prior, **scorer.score(args.work / args.prior)}), flush=True)
    sets = label_sets(cache, prior, args.size, args.work)
    side = cache.images.shape[1]
    gt = np.stack([binary(read_mask(folder.masks / f"{Path(p).stem}.png"), side) for p in cache.paths])
    print(json.dumps({"labels_gt_iou": {"hard": label_iou(sets["hard"][1], gt),
                                        "whole": label_iou(sets["whole"][1], gt)}}), flush=True)
    for variant in args.variants:
        torch.manual_seed(0)
        net = copy.deepcopy(prior).train().requires_grad_(True)
        t0 = time.perf_counter()
        net = drain(fit_unet(sampler(variant, sets, args.size), net, torch.device("cpu"), None,
                             args.steps, 32, RunControl(), "round", 0, lr=args.lr,
                             confidence_weighted=variant != "hard"))
        path = args.work / f"round-{variant}-{args.steps}-lr{args.lr:g}.pt"
        save_segmenter(path, net, size=args.size, method="self-training", source="train")
        print(json.dumps({"variant": variant, "steps": args.steps, "lr": args.lr,
                          "fit_s": round(time.perf_counter() - t0, 1), **scorer.score(path)}),
              flush=True)


if __name__ == "__main__":
    main()
