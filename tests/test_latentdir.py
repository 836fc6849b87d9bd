"""Latent-direction segmenter: loss pieces, a direction on a tiny generator, the whole job."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from engine.config import LatentDirSettings, NetConfig, RunConfig
from engine.control import RunControl
from engine.events import Failed, Finished, WarningEvent
from engine.methods import build_method
from engine.methods.latentdir import (
    direction_loss,
    direction_masks,
    load_generator,
    radial_prior,
    refine_mask,
    sobel_edges,
)
from engine.runs import checkpoint as ckpt
from engine.segmenter.model import load_segmenter
from engine.train.runner import train


def _tiny_run(folder: Path, run: Path) -> None:
    """A randomly initialised tiny ilgan saved the way the trainer saves a run."""
    torch.manual_seed(0)
    cfg = RunConfig(folder=str(folder), out=str(run), method="ilgan", size=32, steps=1,
                    net=NetConfig(g_width=4, d_width=4, z_dim=8))
    method = build_method(cfg, torch.device("cpu"))
    ckpt.save_rolling(run, 1, {"config": cfg.to_dict(), "step": 1, "method": method.state_dict()},
                      keep=3, good=True)


def _latentdir(folder: Path, out: Path, generator: Path) -> RunConfig:
    return RunConfig(folder=str(folder), out=str(out), method="latentdir", size=32, steps=2,
                     device="cpu", threads=1, latentdir=LatentDirSettings(
                         generator=str(generator), direction_steps=3, batch=4, segmenter_batch=4))


def test_pieces_behave() -> None:
    r = radial_prior(9, 9)
    assert r[4, 4] == 1.0 and abs(float(r[0, 0]) + 1) < 1e-6
    flat = torch.zeros(1, 3, 8, 8)
    step = flat.clone()
    step[..., 4:] = 1.0
    assert float(sobel_edges(flat).abs().max()) == 0.0
    assert float(sobel_edges(step)[0, :, 3:5].min()) > 0
    mask = np.zeros((32, 32), np.float32)
    mask[4:20, 4:20] = 1  # 256 px
    mask[28:30, 28:30] = 1  # 4 px speck <= 0.2 x largest
    cleaned = refine_mask(mask, 0.2)
    assert cleaned[28:30, 28:30].sum() == 0 and cleaned[4:20, 4:20].all()


def test_direction_search_lowers_its_loss_and_gives_masks(tiny_demo_folder: Path, tmp_path: Path) -> None:
    _tiny_run(tiny_demo_folder, tmp_path / "gan")
    method, info = load_generator(tmp_path / "gan", torch.device("cpu"))
    assert info["generator_method"] == "ilgan" and info["generator_step"] == 1
    codes = method.sample_codes(8, torch.Generator().manual_seed(1))
    torch.manual_seed(2)
    v = torch.randn(method.code_dim, requires_grad=True)
    eps = 0.5 * method.code_dim**0.5
    opt = torch.optim.Adam([v], lr=0.05)
    first = None
    for _ in range(25):
        loss, _ = direction_loss(method, codes, v, eps, 5.0)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    last, parts = direction_loss(method, codes, v, eps, 5.0)
    assert float(last.detach()) < first
    assert parts["brightness"] > 0  # the light direction brightens the centre
    unit = (v / v.norm()).detach()
    _, masks, change = direction_masks(method, codes, unit, -unit, eps)
    assert masks.shape == (8, 1, 32, 32)
    assert 0.0 < float(masks.mean()) < 1.0  # not the empty (nor the full) mask
    assert float(change.mean()) > 0


def test_run_latentdir_writes_a_segmenter(tiny_demo_folder: Path, tmp_path: Path) -> None:
    _tiny_run(tiny_demo_folder, tmp_path / "gan")
    out = tmp_path / "ld"
    cfg = _latentdir(tiny_demo_folder, out, tmp_path / "gan")
    events = list(train(cfg, RunControl()))
    assert not [e for e in events if isinstance(e, Failed)]
    assert any(isinstance(e, WarningEvent) and "reusing the generator" in e.message for e in events)
    assert isinstance(events[-1], Finished) and not events[-1].stopped
    assert events[-1].summary["generator_method"] == "ilgan"
    net, info = load_segmenter(out / "segmenter.pt")
    assert info.method == "latentdir" and info.size == 32
    assert RunConfig.from_dict(json.loads((out / "config.json").read_text())) == cfg
    assert (out / "directions.pt").exists() and (out / "previews" / "directions.png").exists()


def test_missing_generator_run_fails_clearly(tmp_path: Path) -> None:
    cfg = _latentdir(tmp_path, tmp_path / "o", tmp_path / "nothing")
    events = list(train(cfg))
    assert isinstance(events[-1], Failed) and "no checkpoints" in events[-1].error


def test_cli_trains_latentdir_on_a_generator_run_and_it_exports(
    tiny_demo_folder: Path, tmp_path: Path, capsys
) -> None:
    from engine.cli.main import main
    from engine.export.onnx import export_onnx

    _tiny_run(tiny_demo_folder, tmp_path / "gan")
    out = tmp_path / "ld"
    code = main(["train", str(tiny_demo_folder), "--out", str(out), "--method", "latentdir",
                 "--generator", str(tmp_path / "gan"), "--steps", "2", "--size", "32",
                 "--batch", "4", "--device", "cpu", "--threads", "1"])
    assert code == 0, capsys.readouterr()
    assert "reusing the generator" in capsys.readouterr().out
    report = export_onnx(str(out), None)
    assert Path(report.path).stat().st_size > 0 and report.max_abs_diff < 1e-3


def test_cli_refuses_generator_without_latentdir(tiny_demo_folder: Path, tmp_path: Path,
                                                 capsys) -> None:
    from engine.cli.main import main

    code = main(["train", str(tiny_demo_folder), "--out", str(tmp_path / "r"),
                 "--generator", str(tmp_path), "--steps", "1"])
    assert code != 0 and "--generator needs --method latentdir" in capsys.readouterr().err


def test_a_resume_keeps_the_generator_run_it_started_with(tiny_demo_folder: Path,
                                                          tmp_path: Path) -> None:
    """The app resumes from the panel's settings, which name no generator run."""
    from dataclasses import replace

    _tiny_run(tiny_demo_folder, tmp_path / "gan")
    out = tmp_path / "ld"
    cfg = _latentdir(tiny_demo_folder, out, tmp_path / "gan")
    assert isinstance(list(train(cfg))[-1], Finished)
    again = replace(cfg, latentdir=replace(cfg.latentdir, generator=None))
    events = list(train(again, resume=True))
    assert isinstance(events[-1], Finished) and not events[-1].stopped, events[-1]
    assert not (out / "generator").exists()  # no GAN trained in its place
    assert events[-1].summary["generator_run"] == str(tmp_path / "gan")


def _fitted_parameters_distance(net_a: torch.nn.Module, net_b: torch.nn.Module) -> float:
    return max(float((a.detach() - b.detach()).abs().max()) for a, b in
               zip(net_a.parameters(), net_b.parameters(), strict=True))


def test_the_segmenter_starts_from_the_generator_runs_unless_bootstrap_is_off(
        tiny_demo_folder: Path, tmp_path: Path) -> None:
    """Peel's warm start: the generator run's segmenter is refined, not replaced by a UNet fitted
    from scratch on rough direction masks; ``--no-bootstrap`` keeps the paper's cold fit."""
    from dataclasses import replace

    from engine.nets.unet import UNet
    from engine.runs.folder import RunFolder

    _tiny_run(tiny_demo_folder, tmp_path / "gan")
    torch.manual_seed(7)
    given = UNet()
    RunFolder(tmp_path / "gan").write_segmenter(given, 32, "ilgan", "demo")
    given, _ = load_segmenter(tmp_path / "gan" / "segmenter.pt")

    warm_cfg = _latentdir(tiny_demo_folder, tmp_path / "warm", tmp_path / "gan")
    events = list(train(warm_cfg, RunControl()))
    assert isinstance(events[-1], Finished) and events[-1].summary["warm_start"] is True
    assert any(isinstance(e, WarningEvent) and "starts from the generator run's" in e.message
               for e in events)
    warm, _ = load_segmenter(tmp_path / "warm" / "segmenter.pt")
    # two fine-tuning steps move each weight by about the rate (4e-4) at most
    assert _fitted_parameters_distance(warm, given) < 5e-3

    cold_cfg = replace(_latentdir(tiny_demo_folder, tmp_path / "cold", tmp_path / "gan"),
                       pipeline=replace(warm_cfg.pipeline, bootstrap=False))
    events = list(train(cold_cfg, RunControl()))
    assert isinstance(events[-1], Finished) and events[-1].summary["warm_start"] is False
    cold, _ = load_segmenter(tmp_path / "cold" / "segmenter.pt")
    assert _fitted_parameters_distance(cold, given) > 0.05
