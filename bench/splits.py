"""Fixed train / held-out splits of the dev folders, so every stage is also scored on photos the
run never saw (issue 18: scores on the training photos hid a stage that made things worse).

    python bench/splits.py write                 # (re)builds bench/splits/NAME.json
    python bench/splits.py link NAME OUT_DIR     # OUT_DIR: links to NAME's training photos only

A split is built from the sorted file names and a fixed seed, so it never depends on the order a
folder lists in, and it is committed: every run and every score use the same lists. ``link`` makes
the folder to train on (``peel train OUT_DIR ...``); the photos themselves are never copied or
touched. The demo folder is ``peel demo-data /tmp/peel-demo0`` (200 images, 128 px, seed 0), made
on demand.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.atomic import write_text  # noqa: E402
from engine.demo import STEM_FORMAT  # noqa: E402

SPLITS = ROOT / "bench" / "splits"
# The dev data beside the checkout; PEEL_DEV_DATA points elsewhere (a GPU machine gets a copy
# carried inside the working tree, since only the checkout travels there).
DATA = Path(os.environ.get("PEEL_DEV_DATA", ROOT.parent / "shared" / "data"))
DEMO = Path(tempfile.gettempdir()) / "peel-demo0"  # made on demand by ensure_photos
SEED = 18  # issue 18; changing it changes every held-out score


@dataclass(frozen=True)
class DevFolder:
    """A dev folder: its photos, ground-truth masks (scoring only), ignore masks, training share."""

    name: str
    photos: Path
    masks: Path
    ignore: Path | None
    train_count: int
    names: tuple[str, ...] | None = None  # fixed names (the demo, generated on demand)


def dev_folders() -> dict[str, DevFolder]:
    demo = DEMO
    return {
        "horses": DevFolder("horses", DATA / "weizmann-horses" / "images",
                            DATA / "weizmann-horses" / "masks", None, 150),
        "flowers": DevFolder("flowers", DATA / "oxford-flowers17" / "images",
                             DATA / "oxford-flowers17" / "masks",
                             DATA / "oxford-flowers17" / "ignore", 375),
        "demo": DevFolder("demo", demo, demo / "masks", None, 150,
                          names=tuple(f"{STEM_FORMAT.format(i)}.png" for i in range(200))),
    }


def build_split(names: list[str], train_count: int, seed: int = SEED) -> dict[str, list[str]]:
    """``train_count`` names to train on and the rest held out, both sorted; deterministic."""
    ordered = sorted(names)
    if not 0 < train_count < len(ordered):
        raise ValueError(f"cannot keep {train_count} of {len(ordered)} photos for training")
    order = np.random.default_rng(seed).permutation(len(ordered))
    train = sorted(ordered[i] for i in order[:train_count])
    heldout = sorted(ordered[i] for i in order[train_count:])
    return {"train": train, "heldout": heldout}


def load_split(name: str) -> dict[str, list[str]]:
    return json.loads((SPLITS / f"{name}.json").read_text())


def ensure_photos(folder: DevFolder) -> None:
    """Generate the demo folder when it is missing (the same bytes every time)."""
    if folder.name == "demo" and not (folder.photos / "demo.json").is_file():
        from engine.demo import make_demo_folder

        make_demo_folder(folder.photos, count=200, size=128, seed=0)


def link_training_photos(folder: DevFolder, split: dict[str, list[str]], out: Path) -> Path:
    """``out`` with one symbolic link per training photo (a new, otherwise empty folder)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in split["train"]:
        link = out / name
        if not link.exists():
            os.symlink((folder.photos / name).resolve(), link)
    return out


def _photo_names(folder: DevFolder) -> list[str]:
    if folder.names is not None:
        return list(folder.names)
    return sorted(p.name for p in folder.photos.iterdir() if p.is_file())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("write", help="write bench/splits/NAME.json for every dev folder")
    link = sub.add_parser("link", help="a folder of links to a split's training photos")
    link.add_argument("name", choices=sorted(dev_folders()))
    link.add_argument("out", type=Path)
    args = ap.parse_args(argv)
    folders = dev_folders()
    if args.command == "write":
        SPLITS.mkdir(parents=True, exist_ok=True)
        for folder in folders.values():
            split = build_split(_photo_names(folder), folder.train_count)
            split = {"seed": SEED, "source": folder.name, **split}  # type: ignore[dict-item]
            write_text(SPLITS / f"{folder.name}.json", json.dumps(split, indent=1) + "\n")
            print(f"{folder.name}: {len(split['train'])} train, {len(split['heldout'])} held out")
        return 0
    ensure_photos(folders[args.name])
    out = link_training_photos(folders[args.name], load_split(args.name), args.out)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
