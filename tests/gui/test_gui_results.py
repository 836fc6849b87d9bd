"""Results viewer and exports on a run folder holding a (small, untrained) segmenter."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def run_folder(tmp_path, tiny_demo_folder):
    import torch

    from engine.config import RunConfig
    from engine.nets.unet import UNet, UNetConfig
    from engine.segmenter.model import save_segmenter

    run = tmp_path / "runs" / "demo-run"
    run.mkdir(parents=True)
    cfg = RunConfig(folder=str(tiny_demo_folder), out=str(run), size=32, batch=4, steps=5)
    (run / "config.json").write_text(json.dumps(cfg.to_dict()))
    torch.manual_seed(0)
    save_segmenter(run / "segmenter.pt", UNet(UNetConfig(width=4, depth=2)), 32, "ilgan",
                   str(tiny_demo_folder))
    return run


def test_open_run_shows_overlay_and_pages(make_window, run_folder, qtbot):
    w = make_window()
    assert w.open_run(str(run_folder))
    assert w.training.start_button.text() == "Resume run"
    assert w.training.size.currentData() == 32 and w.training.steps.value() == 5
    res = w.results
    qtbot.waitUntil(lambda: res.current is not None, timeout=10000)
    assert res.current.rgb.shape[:2] == res.current.mask.shape == (64, 64)
    assert "1 / 12" in res.where.text()
    res.next_button.click()
    qtbot.waitUntil(lambda: res.current.path == res.photos[1], timeout=10000)
    res.opacity.setValue(0)  # re-renders from the stored prediction, no new inference
    assert res.prev_button.isEnabled()


class TorchRunner:
    """Stands in for the ONNX session (exporting ONNX costs ~25 s on 2 busy cores; the engine's
    own tests cover it): same contract, the run's torch segmenter inside."""

    def __init__(self, run_dir, delay_s: float = 0.0) -> None:
        from engine.segmenter.model import load_segmenter

        self.net, info = load_segmenter(run_dir / "segmenter.pt")
        self.size, self.stride, self.delay_s = info.size, self.net.stride, delay_s

    def run(self, batch):
        import time

        import torch

        time.sleep(self.delay_s)
        with torch.no_grad():
            return torch.sigmoid(self.net(torch.from_numpy(batch)))[:, 0].numpy()

    def describe(self) -> str:
        return "torch (test)"


def test_export_masks_writes_one_png_per_photo(make_window, run_folder, tmp_path, qtbot,
                                               prompter, monkeypatch):
    import app.engine_calls

    monkeypatch.setattr(app.engine_calls, "ensure_onnx", lambda run_dir: TorchRunner(run_folder))
    w = make_window()
    w.open_run(str(run_folder))
    out = tmp_path / "masks out"
    w.export_masks(str(out), "mask")
    assert w.results.cancel_button.isVisible()
    qtbot.waitUntil(lambda: not w.exports.is_running(), timeout=60000)
    assert not prompter.errors, prompter.errors
    assert len(list(out.glob("*.png"))) == 12
    assert w.exports.last.written == 12
    assert prompter.opened == [str(out)]
    assert any("Mask export: 12 masks written" in t for t in w.log.texts("ok"))


def test_export_cancel(make_window, run_folder, tmp_path, qtbot, prompter, monkeypatch):
    import app.engine_calls

    monkeypatch.setattr(app.engine_calls, "ensure_onnx",
                        lambda run_dir: TorchRunner(run_folder, delay_s=0.3))
    w = make_window()
    w.open_run(str(run_folder))
    out = tmp_path / "cancelled"
    w.export_masks(str(out), "cutout")
    qtbot.wait(100)  # inside the first (slow) batch
    w.results.cancel_button.click()
    qtbot.waitUntil(lambda: not w.exports.is_running(), timeout=20000)
    assert w.exports.last.cancelled
    assert len(list(out.glob("*.png"))) < 12
    assert w.results.masks_button.isEnabled()


def test_open_non_run_folder_reports(make_window, tmp_path, prompter):
    w = make_window()
    assert not w.open_run(str(tmp_path))
    assert prompter.errors and "config.json" in prompter.errors[0][1]
