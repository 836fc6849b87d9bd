"""Ctrl-C during `peel train` stops at a step boundary and leaves a checkpoint to resume from."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch


def test_first_ctrl_c_writes_a_checkpoint_and_resume_continues(tiny_demo_folder, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "engine.cli.main", "train", str(tiny_demo_folder), "--out",
           str(run), "--steps", "100000", "--size", "32", "--batch", "4", "--device", "cpu",
           "--threads", "1", "--no-bootstrap"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=Path(__file__).resolve().parents[1], env=env)
    try:
        deadline = time.monotonic() + 120
        metrics = run / "metrics.jsonl"

        def stepped() -> bool:  # a step's record, not only the plan (written before step 1)
            return metrics.exists() and '"phase"' in metrics.read_text(encoding="utf-8")

        while not stepped() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert stepped(), "training never started"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, out
    assert "stopped at step" in out
    ckpts = sorted((run / "checkpoints").glob("step-*.pt"))
    assert ckpts, out
    step = torch.load(ckpts[-1], weights_only=True)["step"]
    assert step >= 1 and f"stopped at step {step}" in out


def test_peel_compare_stops_on_first_ctrl_c(tiny_demo_folder, tmp_path, monkeypatch, capsys):
    """peel compare had no first-Ctrl-C stop (the trainer was killed mid-step) and, when the
    comparison stopped, indexed the None it returns."""
    import engine.compare
    from engine.cli.main import main

    seen = []

    def fake_compare(config, sink=None, control=None):  # a comparison that is stopped mid-way
        seen.append(control)
        if control is not None:
            os.kill(os.getpid(), signal.SIGINT)
            deadline = time.monotonic() + 10
            while not control.stop_requested and time.monotonic() < deadline:
                time.sleep(0.01)
        return None

    monkeypatch.setattr(engine.compare, "run_compare", fake_compare)
    before = signal.getsignal(signal.SIGINT)
    code = main(["compare", str(tiny_demo_folder), "--out", str(tmp_path / "cmp")])
    out = capsys.readouterr().out
    assert code == 130 and "stopped" in out, out
    assert seen[0] is not None and seen[0].stop_requested
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back
