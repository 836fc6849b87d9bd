"""The ``peel`` command line: help, one-line errors with exit code 2, odd paths that work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli.main import build_parser, main


def test_entry_point_help_runs_as_a_process() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "engine.cli", "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0
    for name in ("demo-data", "evaluate", "baseline"):
        assert name in proc.stdout


@pytest.mark.parametrize(
    "argv", [["demo-data", "--help"], ["evaluate", "--help"], ["baseline", "grabcut", "--help"]]
)
def test_subcommand_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    assert "usage: peel" in capsys.readouterr().out


def test_no_command_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["baseline"])
    assert info.value.code == 2


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err.startswith(f"peel {argv[0]}: error: ")
    return err


def test_missing_and_empty_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = tmp_path / "missing"
    assert "not a folder" in one_line_error(capsys, ["evaluate", str(missing), str(empty)])
    assert "no mask images" in one_line_error(capsys, ["evaluate", str(empty), str(empty)])
    assert "not a folder" in one_line_error(capsys, ["baseline", "grabcut", str(missing), str(tmp_path / "o")])
    assert "no photos" in one_line_error(capsys, ["baseline", "grabcut", str(empty), str(tmp_path / "o")])
    assert "must differ" in one_line_error(capsys, ["baseline", "grabcut", str(empty), str(empty)])
    assert "--count" in one_line_error(capsys, ["demo-data", str(tmp_path / "d"), "--count", "0"])


def test_bad_argument_value_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["demo-data", "x", "--count", "many"])
    assert info.value.code == 2
    assert "invalid int value" in capsys.readouterr().err


def test_demo_grabcut_evaluate_with_odd_paths(
    tiny_demo_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Spaces and non-ASCII all the way through: photos in, masks out, scores back.
    out = tmp_path / "sortie masques ü 马"
    assert main(["baseline", "grabcut", str(tiny_demo_folder), str(out), "--workers", "1"]) == 0
    assert "wrote 12 masks" in capsys.readouterr().out
    assert main(["evaluate", str(out), str(tiny_demo_folder / "masks"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["count"] == 12 and result["missing_count"] == 0
    assert 0.3 < result["iou"] <= 1.0
    assert main(["evaluate", str(out), str(tiny_demo_folder / "masks")]) == 0
    table = capsys.readouterr().out
    assert "IoU (foreground)" in table and f"{result['iou']:.4f}" in table
    # A rerun keeps what exists.
    assert main(["baseline", "grabcut", str(tiny_demo_folder), str(out)]) == 0
    assert "wrote 0 masks" in capsys.readouterr().out


def test_every_subcommand_module_registers() -> None:
    parser = build_parser()
    names = set(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert {"demo-data", "evaluate", "baseline"} <= names
