"""Issue #9: a checkpoint or segmenter from elsewhere is loaded with ``weights_only=True``; a pickle
with code in it is refused with a clear message on every path that opens one, and its code never
runs (the marker file it would create stays absent)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from train_helpers import run_all, tiny_config

from engine.events import Failed
from engine.nets.unet import UNet, UNetConfig
from engine.runs import checkpoint as ckpt
from engine.segmenter.model import SegmenterLoadError, load_segmenter, save_segmenter


class Payload:
    """Unpickling this runs a shell command (what a booby-trapped .pt file would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def booby_trap(path: Path, marker: Path) -> None:
    """Rewrite the .pt at ``path`` with its real content plus an object that runs code."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    payload["extra"] = Payload(marker)
    path.unlink()
    torch.save(payload, path)
    # The trap is real: an unsafe load runs it.
    torch.load(path, map_location="cpu", weights_only=False)  # noqa: S614 - the point of the test
    assert marker.exists()
    marker.unlink()


def refused(message: str) -> bool:
    return "was refused" in message and "code" in message and "weights_only=False" not in message


@pytest.fixture
def segmenter_file(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "run" / "segmenter.pt"
    path.parent.mkdir(parents=True)
    save_segmenter(path, UNet(UNetConfig(width=4)).eval(), 32, "ilgan", "photos")
    return path


def test_resume_refuses_a_checkpoint_with_code(tiny_demo_folder, tmp_path):
    marker = tmp_path / "pwned"
    cfg = tiny_config(tiny_demo_folder, tmp_path / "run", steps=2)
    run_all(cfg)
    latest = ckpt.list_checkpoints(tmp_path / "run")[-1]
    booby_trap(latest, marker)
    events = run_all(cfg, resume=True)
    assert isinstance(events[-1], Failed)
    assert refused(events[-1].error) and latest.name in events[-1].error
    assert "posix.system" in events[-1].error or "os.system" in events[-1].error
    assert not marker.exists()


def test_good_checkpoint_with_code_is_refused_too(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "good.pt"
    ckpt.save(path, {"step": 1})
    booby_trap(path, marker)
    with pytest.raises(ckpt.CheckpointError) as info:
        ckpt.load(path)
    assert refused(str(info.value)) and not marker.exists()


def test_segmenter_loader_refuses_code(segmenter_file, tmp_path):
    marker = tmp_path / "pwned"
    booby_trap(segmenter_file, marker)
    with pytest.raises(SegmenterLoadError) as info:
        load_segmenter(segmenter_file)
    assert refused(str(info.value)) and str(segmenter_file) in str(info.value)
    assert not marker.exists()


def test_gui_viewer_of_an_opened_run_refuses_code(segmenter_file, tmp_path):
    """The results panel of the app builds this Predictor when a run folder is opened."""
    import cv2

    from app.overlay import Predictor

    marker = tmp_path / "pwned"
    booby_trap(segmenter_file, marker)
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.full((40, 40, 3), 128, np.uint8))
    with pytest.raises(SegmenterLoadError) as info:
        Predictor(segmenter_file, device="cpu").predict(str(photo))
    assert refused(str(info.value)) and not marker.exists()


def test_export_onnx_refuses_code(segmenter_file, tmp_path, capsys):
    from engine.cli.main import main

    marker = tmp_path / "pwned"
    booby_trap(segmenter_file, marker)
    assert main(["export-onnx", str(segmenter_file.parent)]) != 0
    err = capsys.readouterr().err
    assert refused(err), err
    assert not marker.exists() and not (segmenter_file.parent / "segmenter.onnx").exists()


def test_bootstrap_retrains_instead_of_loading_a_prior_with_code(segmenter_file, tmp_path):
    from engine.segmenter.bootstrap import _reuse_prior

    marker = tmp_path / "pwned"
    booby_trap(segmenter_file, marker)
    assert _reuse_prior(segmenter_file, 32, torch.device("cpu")) is None
    assert not marker.exists()


def test_a_file_of_another_kind_is_not_said_to_hold_code(tmp_path: Path) -> None:
    """A JPEG given as a segmenter was "refused: it holds Python code ... made or changed
    elsewhere": only a pickle that names a global is that."""
    import cv2

    ok, buf = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    assert ok
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(buf.tobytes())
    with pytest.raises(SegmenterLoadError) as info:
        load_segmenter(photo)
    message = str(info.value)
    assert "not a Peel segmenter file" in message
    assert "code" not in message and "weights_only" not in message
