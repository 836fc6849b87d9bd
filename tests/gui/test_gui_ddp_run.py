"""A run trained by ``torchrun --nproc_per_node=2 ... peel train`` (2 gloo processes on the CPU)
opens in the app like any other run: config, checkpoint and segmenter are rank 0's, written once.

The run uses a time budget, so it also covers the path where rank 0's clock ends every stage for
both processes (a disagreement there would hang the run until the test's timeout).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.gui, pytest.mark.slow]


@pytest.fixture
def ddp_run(tmp_path, tiny_demo_folder):
    torchrun = Path(sys.executable).parent / "torchrun"
    if not torchrun.exists():
        pytest.skip("torchrun not installed")
    run = tmp_path / "ddp-run"
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "engine.cli.main", "train",
           str(tiny_demo_folder), "--out", str(run), "--size", "32", "--batch", "8",
           "--minutes", "0.2", "--no-bootstrap", "--device", "cpu", "--threads", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # Only rank 0 reports: one start line and one end line for two processes.
    assert proc.stdout.count("training ilgan on cpu") == 1, proc.stdout
    assert proc.stdout.count("finished at step") == 1, proc.stdout
    return run


def test_ddp_run_opens_in_the_app(make_window, ddp_run, qtbot):
    from engine.segmenter.model import load_segmenter
    from engine.train import checkpoint as ckpt

    found = ckpt.list_checkpoints(ddp_run)
    assert found and ckpt.load(found[-1])["step"] > 0
    load_segmenter(ddp_run / "segmenter.pt")
    w = make_window()
    assert w.open_run(str(ddp_run))
    assert w.training.start_button.text() == "Resume run"
    assert w.training.size.currentData() == 32
    res = w.results
    qtbot.waitUntil(lambda: res.current is not None, timeout=20000)
    assert res.current.mask.shape == res.current.rgb.shape[:2]
    assert "1 / 12" in res.where.text()
