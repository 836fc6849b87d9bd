"""Quality check of the GAN stage on the synthetic demo folder: does the mask coverage settle at the
folder's true mean object coverage, and do the previews separate background, object and silhouette?

Prints JSON: true coverage, the coverage curve (EMA-free live-generator statistics from
metrics.jsonl), the final preview path, the speed, and issue 18's "layers separate" verdict on
the finished generator: coverage within +-0.05 of the training crops', sameness under 0.7, and
(with ``--bootstrap``) the generated pairs the prior agrees with enough for the segmenter stage's
gate. Usage:
    python bench/train_demo.py --out /tmp/demo-run --minutes 10 [--size 32] [--method perturbgan]
    python bench/train_demo.py --folder PHOTOS:MASKS --out /tmp/horse-run ...  (a labelled folder
    instead of the demo; its masks only measure, as on the demo)
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from mask_sizes import training_masks  # bench/ is on sys.path when run as a script

from engine.config import PipelineConfig, RunConfig
from engine.data import cache_side
from engine.demo import make_demo_folder
from engine.events import Failed, Finished, Preview, WarningEvent
from engine.train.runner import train


def crop_coverage(mask_dir: Path, size: int) -> float:
    """Mean object coverage of the crops the GAN is trained on, averaged over every crop offset.

    The trainer resizes each photo to 1.125 x size and takes random size x size crops (the
    PerturbGAN recipe), so objects fill more of a training image than of the photo: on the demo
    folder 0.238 against 0.189. This is the coverage the generator is asked to imitate.
    """
    slack = cache_side(size) - size
    values = [m[t : t + size, u : u + size].mean() for m in training_masks(mask_dir, size)
              for t in range(slack + 1) for u in range(slack + 1)]
    return float(np.mean(values))


def separation_verdict(run: Path, coverage: float, truth_crops: float, bootstrap: bool) -> dict:
    """Issue 18's criteria on the run's last generator (EMA), judged as the pipeline judges it."""
    import torch

    from engine.methods.latentdir import load_generator
    from engine.segmenter.model import load_segmenter
    from engine.train import pair_sources
    from engine.train.segmenter_stages import BANK_BATCHES, MIN_BANK, choose_pair_source

    pipe = PipelineConfig()
    method, info = load_generator(run, torch.device("cpu"))
    out: dict = {"generator_step": info["generator_step"],
                 "coverage_gap": round(coverage - truth_crops, 4),
                 "sameness": round(pair_sources.generated_sameness(method, 13), 4)}
    ok = abs(out["coverage_gap"]) <= 0.05 and out["sameness"] < 0.7
    prior = run / "bootstrap" / "prior.pt"
    if bootstrap and prior.exists():
        judge = load_segmenter(prior)[0].eval()
        out["agreement"] = round(pair_sources.agreement(method, judge, 7), 4)
        rules = pair_sources.BankRules(candidates=BANK_BATCHES * pipe.segmenter_batch,
                                       min_iou=pipe.min_agreement, needed=MIN_BANK)
        kept = len(pair_sources.agreeing_bank(method, judge, 19, rules))
        out["kept_pairs"] = kept
        out["gate_accepts"] = choose_pair_source(True, out["agreement"], out["sameness"], kept,
                                                 pipe).generated
        ok = ok and out["gate_accepts"]
    out["separated"] = ok
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--method", default=RunConfig.method)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--folder", help="PHOTOS:MASKS, a labelled folder instead of the demo")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--bootstrap", action="store_true",
                    help="train the label-free prior first and use it for L_bg (as the pipeline does)")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                    help="override a method field, e.g. ilgan.max_coverage=0.4")
    args = ap.parse_args()
    if args.folder:
        photos, mask_dir = (Path(p) for p in args.folder.split(":"))
        folder = photos
        truth = float(np.mean([m.mean() for m in training_masks(mask_dir, args.size)]))
    else:
        folder, mask_dir = args.out / "demo", args.out / "demo" / "masks"
        if not (folder / "demo.json").exists():
            make_demo_folder(folder, count=args.count, size=max(64, args.size), seed=0)
        truth = json.loads((folder / "demo.json").read_text())["mean_coverage"]
    truth_crops = crop_coverage(mask_dir, args.size)
    cfg = RunConfig(
        folder=str(folder), out=str(args.out / "run"), method=args.method, size=args.size,
        minutes=args.minutes, device="cpu", threads=args.threads, seed=args.seed,
        batch=args.batch,
        pipeline=replace(PipelineConfig(), bootstrap=args.bootstrap, segmenter=False, rounds=0),
    )
    for item in args.set:
        key, value = item.split("=", 1)
        section, name = key.split(".")
        part = getattr(cfg, section)
        cfg = replace(cfg, **{section: replace(part, **{name: type(getattr(part, name))(value)})})
    t0 = time.time()
    last_preview, warnings, end = None, [], None
    for ev in train(cfg):
        if isinstance(ev, Preview):
            last_preview = ev.path
        elif isinstance(ev, WarningEvent):
            warnings.append(ev.message)
        elif isinstance(ev, (Finished, Failed)):
            end = ev
    lines = [json.loads(x) for x in (args.out / "run" / "metrics.jsonl").read_text().splitlines()]
    curve = [
        {k: round(x[k], 3) if isinstance(x[k], float) else x[k]
         for k in ("step", "time", "mask_coverage", "mask_binariness", "mask_border_excess", "s_bg")
         if k in x}
        for x in lines if "mask_coverage" in x
    ]
    tail = [c["mask_coverage"] for c in curve[-5:]]
    # "Settled" over the last quarter of the run: one log's 64 codes swing by +-0.03.
    last_step = curve[-1]["step"] if curve else 0
    quarter = [c["mask_coverage"] for c in curve if c["step"] > 0.75 * last_step]
    settled = sum(quarter) / max(len(quarter), 1)
    print(json.dumps({
        "folder": str(folder), "method": args.method, "size": args.size, "minutes": args.minutes, "set": args.set,
        "bootstrap": args.bootstrap,
        "batch": args.batch,
        "true_mean_coverage": truth, "true_mean_coverage_of_training_crops": round(truth_crops, 4),
        "final_coverage_mean_last5": sum(tail) / max(len(tail), 1),
        "coverage_mean_last_quarter": settled,
        "verdict": separation_verdict(args.out / "run", settled, truth_crops, args.bootstrap),
        "size_floor": next((x for x in lines if x.get("event") == "size_floor"), None),
        "steps": end.step if end else None, "wall_s": round(time.time() - t0, 1),
        "ended": type(end).__name__, "error": getattr(end, "error", None),
        "warnings": warnings, "last_preview": last_preview, "curve": curve[:: max(1, len(curve) // 40)],
    }, indent=1))


if __name__ == "__main__":
    main()
