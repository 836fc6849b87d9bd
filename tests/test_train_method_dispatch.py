"""`peel train --method redo` goes through the same entry point as the layered GANs."""

from __future__ import annotations

import torch

from engine.cli.main import main
from engine.segmenter.infer import predict_soft
from engine.segmenter.model import load_segmenter


def test_cli_trains_redo_and_leaves_a_segmenter(tiny_demo_folder, tmp_path, capsys):
    run = tmp_path / "redo run"
    code = main(["train", str(tiny_demo_folder), "--out", str(run), "--method", "redo",
                 "--steps", "1", "--size", "32", "--batch", "2", "--device", "cpu",
                 "--threads", "1"])
    assert code == 0, capsys.readouterr().err
    net, info = load_segmenter(run / "segmenter.pt")
    assert info.method == "redo"
    masks = predict_soft(net, [torch.zeros(45, 71, 3, dtype=torch.uint8).numpy()], info.size)
    assert masks[0].shape == (45, 71)
