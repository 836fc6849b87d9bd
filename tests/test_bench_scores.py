"""The held-out measurement (issue 18): fixed splits, per-stage scores, the GAN ablation's summary.

Scored on a hand-built run folder (segmenter files at the paths a run writes): the scoring parts
do not need a training run, and ``--no-gan`` comes from another branch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import gan_ablation  # noqa: E402
import splits  # noqa: E402
import stage_scores  # noqa: E402

from engine.demo import make_demo_folder  # noqa: E402
from engine.nets.unet import UNet  # noqa: E402
from engine.segmenter.bootstrap import prior_config  # noqa: E402
from engine.segmenter.model import save_segmenter  # noqa: E402


def test_committed_splits_are_the_deterministic_ones_and_disjoint() -> None:
    for folder in splits.dev_folders().values():
        committed = splits.load_split(folder.name)
        names = committed["train"] + committed["heldout"]
        rebuilt = splits.build_split(names, folder.train_count)
        assert committed["train"] == rebuilt["train"] and committed["heldout"] == rebuilt["heldout"]
        assert not set(committed["train"]) & set(committed["heldout"])
        assert len(committed["train"]) == folder.train_count
    assert splits.build_split(["c", "a", "b", "d"], 2) == splits.build_split(["d", "b", "a", "c"], 2)


def _net(seed: int) -> UNet:
    torch.manual_seed(seed)
    return UNet(prior_config())


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, splits.DevFolder, dict]:
    root = tmp_path_factory.mktemp("bench")
    photos = root / "demo"
    make_demo_folder(photos, count=8, size=32, seed=0)
    names = sorted(p.name for p in photos.glob("*.png"))
    folder = splits.DevFolder("tiny", photos, photos / "masks", None, 5, names=tuple(names))
    split = splits.build_split(names, 5)
    run = root / "run"
    (run / "bootstrap").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    save_segmenter(run / "bootstrap" / "prior.pt", _net(0), 32, "ilgan", "demo")
    save_segmenter(run / "checkpoints" / "segmenter-round1.pt", _net(1), 32, "ilgan", "demo")
    save_segmenter(run / "checkpoints" / "segmenter-segmenter.pt", _net(2), 32, "ilgan", "demo")
    save_segmenter(run / "segmenter.pt", _net(1), 32, "ilgan", "demo")
    records = [{"step": 1, "phase": "gan", "d_total": 1.0},
               {"step": 5, "event": "segmenter-source", "stage": "segmenter", "agreement": 0.4,
                "sameness": 0.9, "gan_pairs": False},
               {"step": 5, "event": "segmenter-source", "stage": "round1", "agreement": 0.8,
                "sameness": 0.5, "gan_pairs": True}]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n{cut")
    return run, folder, split


def test_stage_scores_cover_every_stage_in_run_order_on_both_parts(tiny_run) -> None:
    run, folder, split = tiny_run
    report = stage_scores.score_run(run, stage_scores.Scorer(folder, split))
    stages = report["stages"]
    # The order the stages ran (metrics.jsonl), not file names or times.
    assert [s["stage"] for s in stages] == ["prior", "segmenter", "round1", "final"]
    for s in stages:
        assert s["train_photos"] == 5 and s["heldout_photos"] == 3
        assert 0.0 <= s["train_iou"] <= 1.0 and 0.0 <= s["heldout_iou"] <= 1.0
    assert stages[1]["gan_pairs"] is False and stages[2]["gan_pairs"] is True
    assert "gan_pairs" not in stages[0] and "gan_pairs" not in stages[3]
    # segmenter.pt holds round1's weights: the same photos give the same scores.
    assert stages[3]["heldout_iou"] == stages[2]["heldout_iou"]
    assert stages[3]["train_iou"] == stages[2]["train_iou"]


def test_ablation_summary_reports_pairs_used_and_the_difference(tiny_run) -> None:
    run, folder, split = tiny_run
    scored = gan_ablation.summarise(stage_scores.score_run(run, stage_scores.Scorer(folder, split)))
    assert scored["gan_pairs_used"] == {"segmenter": False, "round1": True}
    assert scored["final_heldout_iou"] == scored["stages"][-1]["heldout_iou"]
    runs = {"default": {"final_train_iou": 0.7, "final_heldout_iou": 0.65},
            "no-gan": {"final_train_iou": 0.6, "final_heldout_iou": 0.66}}
    assert gan_ablation.difference(runs) == {"train": 0.1, "heldout": -0.01}
    assert gan_ablation.difference({"default": runs["default"]}) == {"train": None, "heldout": None}


def test_ablation_trains_both_variants_pinned_one_core_each(tmp_path: Path) -> None:
    import argparse

    args = argparse.Namespace(minutes=20.0, size=64, seed=0, device="cpu")
    cmd = gan_ablation.train_command(tmp_path / "p", tmp_path / "o", ["--no-gan"], args, 1)
    assert cmd[:3] == ["taskset", "-c", "1"]
    assert "--no-gan" in cmd and cmd[cmd.index("--threads") + 1] == "1"
    assert cmd[cmd.index("--minutes") + 1] == "20.0"
