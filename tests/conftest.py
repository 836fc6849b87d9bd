"""Shared fixtures. Keep them fast: the suite runs on 2 shared CPU cores."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

TINY_DEMO = {"count": 12, "size": 64, "seed": 7}


@pytest.fixture(scope="session")
def _tiny_demo_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engine.demo import make_demo_folder

    root = tmp_path_factory.mktemp("demo-master") / "demo"
    make_demo_folder(root, **TINY_DEMO)
    return root


@pytest.fixture
def tiny_demo_folder(_tiny_demo_master: Path, tmp_path: Path) -> Path:
    """A private copy of a 12-image demo folder (64 px, seed 7) that a test may modify.

    Layout: NAME.png photos, masks/NAME.png exact 0/255 masks, demo.json with ``mean_coverage``.
    Generated once per session, copied per test (a copy costs milliseconds).
    """
    dest = tmp_path / "tiny demo"  # a space in the path on purpose: paths with spaces must work
    shutil.copytree(_tiny_demo_master, dest)
    return dest


@pytest.fixture
def one_torch_thread():
    """Tiny nets on a CPU shared with other jobs train several times faster on one thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _private_user_data(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs keep this machine's measured rates in the user's data directory (appdirs): tests,
    and the processes they start, keep theirs in a directory of their own."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("user-data")))
