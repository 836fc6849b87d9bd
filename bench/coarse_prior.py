"""Does the prior's coarse-to-fine fit beat a fit at full size in the same seconds?

    python bench/coarse_prior.py --split horses --seconds 40 100 300 [--coarse 0 0.5 0.75]
        [--size 64] [--photos 64] [--batch 32] [--out DIR]

A ``--minutes`` run gives the label-free prior a time budget, not a step count, so this bench
compares fits of equal time: the bootstrap's UNet, sampler and pair filter on the GrabCut masks of
``--photos`` training photos (the bootstrap's sample order: a 1-minute run GrabCuts 64), fitted for
each budget with each coarse share (``fit_unet``'s ``coarse_share``: that share of the time on
batches halved in size, the rest at full size; 0 is a plain fit), from the same seed, then scored
on the split's training and held-out photos (ground truth for scoring only). Pin it to one core
(``taskset -c 0``); it sets one torch thread. The budgets are wall time, so the load beside it
changes the step counts: run the variants you compare under the same load. Prints one JSON object.
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

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prior_steps import drain, grabcut_all  # noqa: E402
from splits import dev_folders, ensure_photos, link_training_photos, load_split  # noqa: E402
from stage_scores import Scorer  # noqa: E402

from engine.control import RunControl  # noqa: E402
from engine.data import load_folder  # noqa: E402
from engine.nets.unet import UNet  # noqa: E402
from engine.segmenter import bootstrap  # noqa: E402
from engine.segmenter.fit import fit_unet  # noqa: E402
from engine.segmenter.model import save_segmenter  # noqa: E402
from engine.segmenter.pairs import filter_pairs  # noqa: E402


class Counted:
    """A sampler that counts its draws (one per step)."""

    def __init__(self, sample: Any) -> None:
        self.sample, self.calls = sample, 0

    def __call__(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        return self.sample(n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", default="horses", choices=sorted(dev_folders()))
    ap.add_argument("--seconds", type=float, nargs="+", default=[40, 100])
    ap.add_argument("--coarse", type=float, nargs="+", default=[0.0, 0.5])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--photos", type=int, default=64)
    ap.add_argument("--batch", type=int, default=bootstrap.BATCH)
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "peel-coarse-prior")
    args = ap.parse_args()
    torch.set_num_threads(1)
    load_start = os.getloadavg()
    folder = dev_folders()[args.split]
    ensure_photos(folder)
    split = load_split(args.split)
    work = args.out / args.split
    train_dir = link_training_photos(folder, split, work / "train")
    masks, _ = grabcut_all(folder.photos, split["train"], work / "grabcut")
    scorer = Scorer(folder, split)
    cache = load_folder(train_dir, args.size)
    chosen = bootstrap.sample_order(len(cache.paths))[: args.photos]
    images, mask_arr = bootstrap._training_arrays(
        cache, {i: masks[Path(cache.paths[i]).name] for i in chosen})
    keep = filter_pairs(torch.empty(0), torch.from_numpy(mask_arr).float().div_(255.0).unsqueeze(1))
    if int(keep.sum()) > 0:
        images, mask_arr = images[keep.numpy()], mask_arr[keep.numpy()]
    rows = []
    for seconds in args.seconds:
        for coarse in args.coarse:
            torch.manual_seed(0)
            sample = Counted(bootstrap.make_sampler(images, mask_arr, args.size))
            t0 = time.perf_counter()
            net = drain(fit_unet(sample, UNet(bootstrap.prior_config()), torch.device("cpu"),
                                 seconds, None, args.batch, RunControl(), "prior", 0,
                                 coarse_share=coarse))
            fit_s = time.perf_counter() - t0
            path = work / f"prior-{args.size}-{args.photos}-{seconds:g}s-c{coarse:g}.pt"
            save_segmenter(path, net, size=args.size, method=bootstrap.METHOD, source="train")
            score = scorer.score(path)
            rows.append({"seconds": seconds, "coarse": coarse, "steps": sample.calls,
                         "fit_s": round(fit_s, 1), "train_iou": score["train_iou"],
                         "heldout_iou": score["heldout_iou"]})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"split": args.split, "size": args.size, "photos": len(images),
                      "batch": args.batch, "rows": rows, "load_start": load_start,
                      "load_end": os.getloadavg()}, indent=1))


if __name__ == "__main__":
    main()
