"""PerturbGAN's encoder segmenter: a pipeline stage, a segmenter kind, an ONNX model, and an
encoder that really inverts the generator."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from export_helpers import shapes_photo
from train_helpers import drain, run_all, tiny_config

from engine.config import (
    NetConfig,
    PerturbEncoderConfig,
    PerturbGanConfig,
    PipelineConfig,
    RunConfig,
)
from engine.control import RunControl
from engine.events import Failed, Finished, PhaseChanged

ENCODER = PerturbEncoderConfig(width=8, steps=12, batch=4)


@pytest.fixture(scope="module")
def encoder_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny perturbgan run with the UNet stage and the encoder stage (both a few steps)."""
    from engine.demo import make_demo_folder

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        root = tmp_path_factory.mktemp("pg-encoder")
        folder = root / "photos"
        make_demo_folder(folder, count=12, size=64, seed=7)
        out = root / "run"
        cfg = tiny_config(
            folder, out, method="perturbgan", steps=10,
            perturbgan=PerturbGanConfig(segmenter="encoder", encoder=ENCODER),
            pipeline=PipelineConfig(bootstrap=False, segmenter=True, rounds=0, segmenter_steps=4,
                                    segmenter_batch=4),
        )
        events = run_all(cfg)
    finally:
        torch.set_num_threads(before)
    assert not [e for e in events if isinstance(e, Failed)], [e for e in events if isinstance(e, Failed)]
    assert isinstance(events[-1], Finished) and not events[-1].stopped
    phases = [e.phase for e in events if isinstance(e, PhaseChanged)]
    assert phases.index("encoder") > phases.index("segmenter"), "the encoder stage comes last"
    return out


def test_run_writes_an_encoder_segmenter_and_keeps_the_unet(encoder_run: Path) -> None:
    payload = torch.load(encoder_run / "segmenter.pt", weights_only=True)
    assert payload["kind"] == "encoder" and payload["method"] == "perturbgan"
    assert payload["arch"]["size"] == 32 and payload["arch"]["width"] == ENCODER.width
    unet = torch.load(encoder_run / "segmenter-unet.pt", weights_only=True)
    assert unet["kind"] == "unet"
    saved = RunConfig.from_dict(json.loads((encoder_run / "config.json").read_text()))
    assert saved.perturbgan.segmenter == "encoder" and saved.perturbgan.encoder == ENCODER
    records = [json.loads(line) for line in (encoder_run / "metrics.jsonl").read_text().splitlines()]
    enc = [r for r in records if r.get("event") == "encoder"]
    assert len(enc) == 1 and enc[0]["steps"] == ENCODER.steps
    assert {"z_mse_fg", "z_mse_bg", "mask_iou"} <= set(enc[0])


def test_encoder_segmenter_masks_have_the_photo_size(encoder_run: Path, tmp_path: Path) -> None:
    from engine.imageio import read_rgb
    from engine.nets.encoder import EncoderSegmenter
    from engine.segmenter.infer import predict_soft
    from engine.segmenter.model import load_segmenter

    net, info = load_segmenter(encoder_run / "segmenter.pt")
    assert isinstance(net, EncoderSegmenter) and net.stride == 1 and info.size == 32
    grey_path = tmp_path / "grey.png"
    cv2.imwrite(str(grey_path), cv2.cvtColor(shapes_photo(120, 75), cv2.COLOR_RGB2GRAY))
    photos = [shapes_photo(333, 517), read_rgb(grey_path), shapes_photo(31, 9)]
    masks = predict_soft(net, photos, info.size)
    for photo, mask in zip(photos, masks, strict=True):
        assert mask.shape == photo.shape[:2]
        assert mask.dtype == np.float32 and 0.0 <= mask.min() and mask.max() <= 1.0
    # The raw net: logits at the input size for any H, W (it resizes inside).
    with torch.no_grad():
        assert net(torch.zeros(2, 3, 333, 517)).shape == (2, 1, 333, 517)
        assert net(torch.zeros(1, 3, 7, 40)).shape == (1, 1, 7, 40)


def test_onnx_export_of_the_encoder_matches_torch_at_odd_sizes(encoder_run: Path, tmp_path: Path) -> None:
    from engine.export.onnx import export_onnx
    from engine.export.sessions import SegmenterSession
    from engine.segmenter.infer import predict_soft
    from engine.segmenter.model import load_segmenter

    report = export_onnx(encoder_run / "segmenter.pt", tmp_path / "enc.onnx")
    assert report.metadata.stride == 1 and report.max_abs_diff < 1e-4
    assert "2x33x64" in report.parity  # a non-square batch of 2 was checked
    net, info = load_segmenter(encoder_run / "segmenter.pt")
    photos = [shapes_photo(333, 517), shapes_photo(97, 61, np.random.default_rng(3))]
    expected = predict_soft(net, photos, info.size)
    session = SegmenterSession(tmp_path / "enc.onnx", device="cpu")
    got = session.predict_soft(photos)
    for photo, e, g in zip(photos, expected, got, strict=True):
        assert g.shape == e.shape == photo.shape[:2]
        assert float(np.abs(g - e).max()) < 1e-4


def test_encoder_recovers_the_code_of_generated_samples(one_torch_thread: None, tmp_path: Path) -> None:
    """On a briefly trained tiny generator, E(G(z)) must land far closer to z than chance.

    Predicting 0 (the prior's mean) gives MSE 1 per coordinate; an encoder that learned nothing
    stays there. The generator gets a few GAN steps first so its BatchNorm statistics are real:
    the untrained EMA generator's output barely depends on z at all.
    """
    from engine.methods import build_method
    from engine.methods.perturbgan_encoder import train_encoder

    torch.manual_seed(0)
    cfg = tiny_config(tmp_path, tmp_path / "run", method="perturbgan")
    method = build_method(cfg, torch.device("cpu"))
    real = torch.rand(64, 3, 32, 32) * 2 - 1
    for _ in range(30):
        method.step(real[torch.randint(0, 64, (4,))])
    enc = PerturbEncoderConfig(width=8, batch=16, lr=3e-3)
    events, (seg, summary) = drain(
        train_encoder(method, None, enc, torch.device("cpu"), None, 250, RunControl(), seed=1)
    )
    z_losses = [e.values["z"] for e in events if type(e).__name__ == "Losses"]
    assert summary["steps"] == 250 and summary["z_loss_first"] > 0.8
    assert summary["z_mse_fg"] < 0.6, summary  # held-out samples, chance is ~1
    assert summary["z_mse_fg"] < 0.7 * summary["z_loss_first"], summary
    assert z_losses[-1] < 0.7 * z_losses[0]
    # The generator inside the segmenter is the EMA foreground generator, untouched by training.
    for a, b in zip(seg.fg.state_dict().values(), method.ema_fg.state_dict().values(), strict=True):
        assert torch.equal(a.cpu(), b.cpu())


def test_minutes_budget_is_split_with_the_encoder_stage(tmp_path: Path) -> None:
    from engine.methods.perturbgan_encoder import add_encoder_stage
    from engine.train.runner import Stage

    stages = [Stage("gan", "gan", 300.0, None), Stage("segmenter", "segmenter", 100.0, None)]
    base = tiny_config(tmp_path, tmp_path / "r", method="perturbgan", steps=None, minutes=400 / 60)
    assert add_encoder_stage(base, stages) == stages  # the default keeps the UNet pipeline
    cfg = replace(base, perturbgan=PerturbGanConfig(segmenter="encoder"))
    planned = add_encoder_stage(cfg, stages)
    assert [s.kind for s in planned] == ["gan", "segmenter", "encoder"]
    assert sum(s.budget_s for s in planned) == pytest.approx(400.0)
    assert planned[-1].budget_s == pytest.approx(400.0 * cfg.perturbgan.encoder.fraction)
    by_steps = add_encoder_stage(replace(cfg, minutes=None, steps=50), stages)
    assert by_steps[-1].kind == "encoder" and by_steps[-1].budget_s is None


def test_config_and_cli_reject_a_bad_segmenter(tiny_demo_folder: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from engine.cli.main import main

    with pytest.raises(ValueError, match="segmenter"):
        PerturbGanConfig(segmenter="resnet")
    code = main(["train", str(tiny_demo_folder), "--out", str(tmp_path / "r"), "--method", "ilgan",
                 "--segmenter", "encoder", "--steps", "1"])
    assert code == 2
    assert "--method perturbgan" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_compare_can_score_perturbgan_with_its_encoder(tiny_demo_folder: Path, tmp_path: Path,
                                                       one_torch_thread: None) -> None:
    from engine.compare import METHODS, CompareConfig, run_compare

    assert "perturbgan-encoder" not in METHODS  # accepted, but not in the default comparison
    tiny = {"batch": 4, "log_every": 2, "preview_every": 4, "checkpoint_every": 4,
            "net": NetConfig(g_width=4, d_width=4, z_dim=8),
            "perturbgan": PerturbGanConfig(encoder=PerturbEncoderConfig(width=4, steps=3, batch=4)),
            "pipeline": PipelineConfig(bootstrap=False, segmenter=False, rounds=0)}
    out = tmp_path / "cmp"
    cfg = CompareConfig(folder=str(tiny_demo_folder), gt=str(tiny_demo_folder / "masks"), out=str(out),
                        methods=("perturbgan-encoder",), minutes=None, steps=2, size=32, device="cpu",
                        overrides={"perturbgan-encoder": tiny})
    report = run_compare(cfg)
    row = report["rows"][0]
    assert row["method"] == "perturbgan-encoder" and row["status"] == "trained", row
    assert row["scores"]["count"] == 12
    payload = torch.load(out / "perturbgan-encoder" / "segmenter.pt", weights_only=True)
    assert payload["kind"] == "encoder" and payload["method"] == "perturbgan"
    # The overridden section holds: 3 encoder steps, not the default 600 (which took minutes).
    records = [json.loads(x) for x in (out / "perturbgan-encoder" / "metrics.jsonl").read_text().splitlines()]
    assert [r["steps"] for r in records if r.get("event") == "encoder"] == [3.0]


def test_the_encoder_stage_writes_nothing_on_a_non_main_rank(tmp_path: Path, monkeypatch,
                                                              one_torch_thread) -> None:
    """Under torchrun only rank 0 writes the run folder; the encoder stage wrote segmenter.pt
    (and segmenter-unet.pt) on every rank."""
    from engine.demo import make_demo_folder
    from engine.parallel import distributed

    folder, out = tmp_path / "photos", tmp_path / "run"
    make_demo_folder(folder, count=12, size=64, seed=7)
    cfg = tiny_config(
        folder, out, method="perturbgan", steps=2,
        perturbgan=PerturbGanConfig(segmenter="encoder", encoder=replace(ENCODER, steps=2)),
        pipeline=PipelineConfig(bootstrap=False, segmenter=False, rounds=0),
    )
    monkeypatch.setattr(distributed, "is_main", lambda: False)
    events = run_all(cfg)
    assert isinstance(events[-1], Finished) and not events[-1].stopped, events[-1]
    assert not (out / "segmenter.pt").exists() and not (out / "segmenter-unet.pt").exists()
