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
        while not (run / "metrics.jsonl").exists() and time.monotonic() < deadline:
            time.sleep(0.2)  # training has started (the first steps are logged)
        assert (run / "metrics.jsonl").exists(), "training never started"
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
