"""Issue #7/#9: a big folder is listed in a worker thread, so opening it never freezes the window.

The listing is made slow on purpose (a wrapped ``scan_images`` that waits) so that each test shows
what happens *while* it runs; the folders are small (``LIST_AT_ONCE`` is lowered) to stay fast.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest


def _tiny_png() -> bytes:
    import cv2
    import numpy as np

    ok, data = cv2.imencode(".png", np.full((8, 8, 3), 128, np.uint8))
    assert ok
    return data.tobytes()


def _folder(path: Path, n: int, broken: int = 0) -> Path:
    path.mkdir(parents=True)
    png = _tiny_png()
    for i in range(n):
        (path / f"p{i:03d}.png").write_bytes(png)
    for i in range(broken):
        (path / f"broken{i}.png").write_bytes(b"")
    return path


class SlowScan:
    """Wraps ``scan_images`` in the worker module: records the thread and waits for ``release``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, hold_s: float = 5.0) -> None:
        import app.folder_scan

        self.release = threading.Event()
        self.threads: list[str] = []
        self.calls: list[str] = []
        real = app.folder_scan.scan_images

        def slow(folder):
            self.threads.append(threading.current_thread().name)
            self.calls.append(str(folder))
            self.release.wait(hold_s)
            return real(folder)

        monkeypatch.setattr(app.folder_scan, "scan_images", slow)


@pytest.fixture
def small_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import app.panels.folder

    monkeypatch.setattr(app.panels.folder, "LIST_AT_ONCE", 5)


@pytest.fixture
def panel(qtbot):
    from app.panels.folder import FolderPanel

    p = FolderPanel()
    qtbot.addWidget(p)
    p.show()
    yield p
    p.shutdown(10_000)
    assert p.scanner.running() == 0


def test_big_folder_is_listed_in_a_worker_and_shown_when_done(
        panel, qtbot, tmp_path, monkeypatch, small_limit) -> None:
    folder = _folder(tmp_path / "big", 12, broken=1)
    slow = SlowScan(monkeypatch)
    messages: list[tuple[str, str]] = []
    panel.message.connect(lambda text, level: messages.append((level, text)))
    t = time.perf_counter()
    assert panel.show_folder(str(folder)) is None  # not known yet: the listing runs elsewhere
    returned_s = time.perf_counter() - t
    assert returned_s < 2.0, returned_s  # ~1 ms when idle; generous for the shared machine
    assert panel.scanning and panel.image_count == 0
    assert "Scanning" in panel.count_label.text()
    assert panel.folder == str(folder) and panel.path_label.text() == str(folder)
    qtbot.waitUntil(lambda: bool(slow.threads), timeout=5000)
    assert slow.threads[0] != threading.main_thread().name
    qtbot.wait(100)
    assert panel.scanning  # still waiting for the (held) listing: the GUI thread was free

    with qtbot.waitSignal(panel.scanned, timeout=10_000):
        slow.release.set()
    assert not panel.scanning and panel.image_count == 13
    assert panel.model.rowCount() == 13
    assert ("info", f"Folder {folder}: 13 images") == (messages[-1][0],
                                                      messages[-1][1].split(" (listed")[0])
    qtbot.waitUntil(lambda: "checking" not in panel.count_label.text(), timeout=10_000)
    assert "12 images" in panel.count_label.text()  # 13 files, 1 unreadable
    assert "1 unreadable" in panel.count_label.text()
    assert list(panel.model.bad_files().values()) == ["empty file (0 bytes)"]


def test_small_folder_is_still_listed_at_once(panel, tmp_path, monkeypatch) -> None:
    slow = SlowScan(monkeypatch)
    folder = _folder(tmp_path / "small", 3)
    assert panel.show_folder(str(folder)) == 3
    assert panel.model.rowCount() == 3 and not panel.scanning
    assert not slow.calls  # no worker involved


def test_a_stale_listing_never_replaces_the_folder_chosen_after_it(
        panel, qtbot, tmp_path, monkeypatch, small_limit) -> None:
    first = _folder(tmp_path / "first", 20)
    second = _folder(tmp_path / "second", 8)
    small = _folder(tmp_path / "small", 2)
    slow = SlowScan(monkeypatch)
    shown: list[int] = []
    panel.scanned.connect(lambda: shown.append(panel.image_count))

    assert panel.show_folder(str(first)) is None
    assert panel.show_folder(str(second)) is None  # chosen while the first is still listed
    qtbot.waitUntil(lambda: len(slow.calls) == 2, timeout=5000)
    slow.release.set()
    qtbot.waitUntil(lambda: panel.scanner.running() == 0, timeout=10_000)
    qtbot.wait(50)  # let any queued answer arrive
    assert shown == [8] and panel.folder == str(second) and panel.model.rowCount() == 8

    # A big folder, then a small one listed at once: the big one's late answer is dropped.
    slow.release.clear()
    assert panel.show_folder(str(first)) is None
    assert panel.show_folder(str(small)) == 2
    slow.release.set()
    qtbot.waitUntil(lambda: panel.scanner.running() == 0, timeout=10_000)
    qtbot.wait(50)
    assert panel.folder == str(small) and panel.model.rowCount() == 2
    assert shown == [8, 2]


def test_a_folder_that_cannot_be_listed_says_why(panel, qtbot, tmp_path, monkeypatch,
                                                 small_limit) -> None:
    import app.folder_scan

    folder = _folder(tmp_path / "big", 10)

    def refuse(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(app.folder_scan, "scan_images", refuse)
    messages: list[tuple[str, str]] = []
    panel.message.connect(lambda text, level: messages.append((level, text)))
    with qtbot.waitSignal(panel.scanned, timeout=10_000):
        assert panel.show_folder(str(folder)) is None
    assert not panel.scanning and panel.image_count == 0
    assert "Permission denied" in panel.count_label.text()
    assert messages and messages[-1][0] == "error" and "Permission denied" in messages[-1][1]
    with pytest.raises(FileNotFoundError):  # a missing folder is refused at once, as before
        panel.show_folder(str(tmp_path / "missing"))


def test_window_enables_start_when_the_listing_lands(make_window, qtbot, tmp_path, monkeypatch,
                                                     small_limit) -> None:
    folder = _folder(tmp_path / "big", 12)
    slow = SlowScan(monkeypatch)
    w = make_window()
    assert w.open_folder(str(folder))
    assert not w.training.start_button.isEnabled()  # nothing listed yet
    slow.release.set()
    qtbot.waitUntil(lambda: w.training.start_button.isEnabled(), timeout=10_000)
    assert w.folder_panel.image_count == 12
    assert any(t.startswith(f"Folder {folder}: 12 images") for t in w.log.texts("info"))


def test_closing_the_window_during_a_listing_joins_it(make_window, qtbot, tmp_path, monkeypatch,
                                                      small_limit) -> None:
    folder = _folder(tmp_path / "big", 12)
    slow = SlowScan(monkeypatch, hold_s=0.5)  # the listing ends by itself, half a second in
    w = make_window()
    assert w.open_folder(str(folder))
    qtbot.waitUntil(lambda: bool(slow.calls), timeout=5000)
    assert w.folder_panel.scanner.running() == 1
    assert w.close()
    assert w.folder_panel.scanner.running() == 0  # joined, not left running


def test_opening_a_run_on_a_big_folder_lists_its_photos_in_the_worker(
        make_window, qtbot, tmp_path, monkeypatch, small_limit) -> None:
    """The results view of a run gets the photos when the listing lands, never from a scan on the
    GUI thread (opening a run on a 50,000-file folder used to freeze the window for seconds)."""
    import json

    import torch

    from engine.config import RunConfig
    from engine.nets.unet import UNet, UNetConfig
    from engine.segmenter.model import save_segmenter

    folder = _folder(tmp_path / "big", 12)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(RunConfig(folder=str(folder), out=str(run), size=32, steps=5).to_dict()))
    torch.manual_seed(0)
    save_segmenter(run / "segmenter.pt", UNet(UNetConfig(width=4, depth=2)), 32, "ilgan", str(folder))
    slow = SlowScan(monkeypatch)
    w = make_window()
    assert w.open_run(str(run))
    assert w.results.photos == []  # nothing scanned on this thread while the worker lists
    slow.release.set()
    qtbot.waitUntil(lambda: len(w.results.photos) == 12, timeout=10_000)
    assert slow.threads and all(t != threading.main_thread().name for t in slow.threads)
    qtbot.waitUntil(lambda: w.results.current is not None, timeout=10_000)
