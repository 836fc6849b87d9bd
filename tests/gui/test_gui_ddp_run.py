"""A run trained by ``torchrun --nproc_per_node=2 ... peel train`` (2 gloo processes on the CPU)
opens in the app like any other run: config, checkpoint and segmenter are rank 0's, written once.

The run uses a time budget (``--minutes``), so it also covers the path where rank 0's clock ends
every stage for both processes (``tests/test_distributed.py`` uses step counts only); a
disagreement there would leave one process waiting in a collective. The budget is small (15 s):
6 s was enough alone, but under load (two suites on 2 cores) the budget was spent before the GAN's
first step, and the run ended at step 0. Measured alone on 2 cores: 22-33 s at load
~3, 49-105 s at load ~7 (a benchmark, a test suite and a PyInstaller build beside it); nearly all
of it is three processes importing torch, the two workers joining the group and exiting, not
training.

On a timeout torchrun and every process under it are killed, so a hung worker cannot outlive the
test (and keep a core busy for the rest of the suite), and the output so far is shown instead of a
bare TimeoutExpired. torchrun starts each worker in a session of its own, so killing torchrun's
process group would miss them: the workers are found through /proc as torchrun's descendants.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.gui, pytest.mark.slow]

TIMEOUT_S = 240  # over twice the slowest run measured (105 s at load ~7 on 2 cores)


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid``, from the parent ids in /proc/*/stat (Linux; empty elsewhere).

    /proc/PID/task/TID/children would be simpler but needs CONFIG_PROC_CHILDREN, which this
    machine's kernel lacks.
    """
    parent_of: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # the command name (field 2) may hold spaces and parentheses: split after its ")"
            parent_of[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    found, todo = [], [pid]
    while todo:
        below = todo.pop()
        kids = [child for child, parent in parent_of.items() if parent == below]
        found += kids
        todo += kids
    return found


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc`` first (so it restarts nothing), then the processes it had started."""
    tree = [proc.pid, *_descendants(proc.pid)]  # listed before anything dies and is reparented
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture
def ddp_run(tmp_path, tiny_demo_folder):
    torchrun = Path(sys.executable).parent / "torchrun"
    if not torchrun.exists():
        pytest.skip("torchrun not installed")
    run = tmp_path / "ddp-run"
    log = tmp_path / "torchrun.log"
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "engine.cli.main", "train",
           str(tiny_demo_folder), "--out", str(run), "--size", "32", "--batch", "8",
           "--method", "ilgan", "--minutes", "0.25", "--no-bootstrap", "--device", "cpu", "--threads", "1"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
        try:
            rc = proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _kill_tree(proc)  # torchrun and both workers
            pytest.fail(f"torchrun still running after {TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
    text = log.read_text()
    assert rc == 0, text[-3000:]
    # Only rank 0 reports: one start line and one end line for two processes.
    assert text.count("training ilgan on cpu") == 1, text
    assert text.count("finished at step") == 1, text
    assert "rank 1 of 2 joined" in text, text
    return run


def test_ddp_run_opens_in_the_app(make_window, ddp_run, qtbot):
    from engine.runs import checkpoint as ckpt
    from engine.segmenter.model import load_segmenter

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
