"""peel compare: tiny budgets, every method, a report with one row per method plus GrabCut."""

from __future__ import annotations

import json
from pathlib import Path

from engine.compare import CompareConfig, run_compare
from engine.config import NetConfig, PipelineConfig, RunConfig

TINY_GAN = {"batch": 4, "log_every": 1, "preview_every": 2, "checkpoint_every": 2,
            "net": NetConfig(g_width=4, d_width=4, z_dim=8),
            "pipeline": PipelineConfig(bootstrap=False, rounds=0, segmenter_steps=2, segmenter_batch=4)}
TINY = {
    "ilgan": TINY_GAN,
    "redo": {"batch": 3, "mask_width": 4, "gen_width": 4, "critic_width": 4, "restart_until": 0,
             "log_every": 1, "preview_every": 2, "checkpoint_every": 2},
    "latentdir": {"direction_steps": 2, "batch": 4, "segmenter_batch": 4},
}


def test_compare_writes_a_report_row_per_method(tiny_demo_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    cfg = CompareConfig(folder=str(tiny_demo_folder), gt=str(tiny_demo_folder / "masks"), out=str(out),
                        methods=("ilgan", "redo", "latentdir"), minutes=None, steps=2, size=32,
                        device="cpu", overrides=TINY)
    seen: list[str] = []
    report = run_compare(cfg, sink=lambda method, ev: seen.append(method))
    assert {"ilgan", "redo", "latentdir"} <= set(seen)
    names = [r["method"] for r in report["rows"]]
    assert names == ["ilgan", "redo", "latentdir", "grabcut"]
    for row in report["rows"]:
        assert row["status"] in {"trained", "baseline"}, row
        assert row["scores"]["count"] == 12 and 0.0 <= row["scores"]["iou"] <= 1.0
    md = (out / "report.md").read_text(encoding="utf-8")
    for name in names:
        assert f"| {name} |" in md
    assert "generator of ilgan" in md  # latentdir says whose generator it reused
    # Every method's run folder reads back as a RunConfig, as the app opens it (latentdir wrote
    # its own schema: "unknown RunConfig fields").
    for name in ("ilgan", "redo", "latentdir"):
        saved = RunConfig.from_dict(json.loads((out / name / "config.json").read_text()))
        assert saved.method == name and saved.size == 32
    assert (out / "report.png").stat().st_size > 1000
    assert len(list((out / "redo" / "masks").glob("*.png"))) == 12
    assert json.loads((out / "report.json").read_text())["images"] == 12

    # A second call reuses every finished run instead of training again.
    again = run_compare(cfg, sink=lambda method, ev: seen.append("again-" + method))
    assert not [s for s in seen if s.startswith("again-")]
    assert [r["status"] for r in again["rows"]] == ["reused", "reused", "reused", "baseline"]


def test_compare_without_ground_truth_shows_masks_only(tiny_demo_folder: Path, tmp_path: Path) -> None:
    """A user's own folder has no masks: every method still segments the same photos, unscored."""
    from engine.compare import FIGURE_PHOTOS

    out = tmp_path / "cmp"
    cfg = CompareConfig(folder=str(tiny_demo_folder), gt=None, out=str(out), methods=("redo",),
                        minutes=None, steps=2, size=32, device="cpu", overrides=TINY)
    report = run_compare(cfg)
    assert report is not None and report["scored"] is False and report["gt"] is None
    assert [(r["method"], r["status"], r["scores"]) for r in report["rows"]] == [
        ("redo", "trained", {}), ("grabcut", "baseline", {})]
    assert len(list((out / "redo" / "masks").glob("*.png"))) == FIGURE_PHOTOS  # only the figure's
    assert len(list((out / "grabcut" / "masks").glob("*.png"))) == FIGURE_PHOTOS
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "no ground truth" in md and "| redo | — | — | — | — |" in md
    assert (out / "report.png").stat().st_size > 1000


def test_compare_stop_request_writes_no_report(tiny_demo_folder: Path, tmp_path: Path) -> None:
    from engine.control import RunControl
    from engine.events import Progress

    control = RunControl()
    out = tmp_path / "cmp"
    cfg = CompareConfig(folder=str(tiny_demo_folder), gt=None, out=str(out), methods=("redo", "ilgan"),
                        minutes=None, steps=10_000, size=32, device="cpu", overrides=TINY)
    seen: list[str] = []

    def sink(method: str, ev: object) -> None:
        seen.append(method)
        if isinstance(ev, Progress):
            control.stop()

    assert run_compare(cfg, sink=sink, control=control) is None
    assert set(seen) == {"redo"}  # ilgan never started
    assert not (out / "report.md").exists()
    assert list((out / "redo" / "checkpoints").glob("step-*.pt"))  # resumable later


def test_cli_compare_needs_no_ground_truth(tiny_demo_folder: Path, tmp_path: Path, capsys) -> None:
    """`peel compare FOLDER` on a user's own folder (no masks) reuses a finished run and reports it unscored."""
    from engine.cli.main import main

    out = tmp_path / "cmp"
    cfg = CompareConfig(folder=str(tiny_demo_folder), gt=None, out=str(out), methods=("redo",),
                        minutes=None, steps=2, size=32, device="cpu", overrides=TINY)
    run_compare(cfg)
    (out / "report.md").unlink()
    assert main(["compare", str(tiny_demo_folder), "--methods", "redo", "--out", str(out),
                 "--size", "32", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "redo" in printed and "no score" in printed and "reused" in printed
    assert "no ground truth" in (out / "report.md").read_text(encoding="utf-8")
