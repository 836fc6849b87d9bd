"""Expected failures of ``peel train`` are one line ``peel train: error: ...`` (exit 2 for bad
input or arguments, 1 for a run that failed), never a traceback; a bug says it is one."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.cli.main import main
from engine.runs import checkpoint as ckpt
from tests.train_helpers import run_all, tiny_config


@pytest.fixture
def cli_logging(capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    """Log records reach the captured stderr at INFO, as under ``peel`` (pytest's own capture
    handlers would otherwise hide a traceback the trainer logs)."""
    root = logging.getLogger()
    handler = logging.StreamHandler()  # created now: writes to the captured sys.stderr
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield
    root.removeHandler(handler)
    root.setLevel(old_level)


def fails(capsys: pytest.CaptureFixture[str], argv: list[str], code: int) -> str:
    """Run ``peel ARGV``; check the exit code and that stderr is one error line, no traceback."""
    capsys.readouterr()  # what a fixture's own training logged is not this command's output
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"peel {argv[0]}: error: "), err
    return err


@pytest.fixture
def finished_run(tiny_demo_folder: Path, tmp_path: Path) -> Path:
    run_all(tiny_config(tiny_demo_folder, tmp_path / "run", steps=2))
    return tmp_path / "run"


def train_argv(folder: Path, run: Path, *extra: str, method: str = "ilgan", size: str = "32") -> list[str]:
    return ["train", str(folder), "--out", str(run), "--method", method, "--steps", "2",
            "--size", size, "--batch", "4", "--device", "cpu", "--threads", "1",
            "--no-bootstrap", *extra]


def test_empty_folder_as_a_process(tmp_path: Path) -> None:
    """The README's promise, through the real entry point and its logging set-up."""
    (tmp_path / "empty").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "engine.cli", *train_argv(tmp_path / "empty", tmp_path / "run")],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.strip().splitlines() == [
        f"peel train: error: no readable images in {tmp_path / 'empty'}"
    ]


def test_existing_run_without_resume(cli_logging, finished_run, tiny_demo_folder, capsys) -> None:
    err = fails(capsys, train_argv(tiny_demo_folder, finished_run), 2)
    assert "already holds a run" in err and "--resume" in err


@pytest.mark.parametrize("change", [{"method": "perturbgan"}, {"size": "64"}])
def test_resume_with_another_method_or_size(
    cli_logging, finished_run, tiny_demo_folder, capsys, change
) -> None:
    err = fails(capsys, train_argv(tiny_demo_folder, finished_run, "--resume", **change), 2)
    assert "cannot resume" in err and next(iter(change)) in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [("{not json", "not a valid run configuration"), ("[1, 2]", "expected a JSON object")],
)
def test_corrupt_or_non_object_config(
    cli_logging, finished_run, tiny_demo_folder, capsys, text, expected
) -> None:
    (finished_run / "config.json").write_text(text, encoding="utf-8")
    err = fails(capsys, train_argv(tiny_demo_folder, finished_run, "--resume"), 2)
    assert expected in err and "config.json" in err


def test_truncated_checkpoint_is_a_failed_run(
    cli_logging, finished_run, tiny_demo_folder, capsys
) -> None:
    latest = ckpt.list_checkpoints(finished_run)[-1]
    latest.write_bytes(latest.read_bytes()[:100])
    # The saved configuration is the tiny one; resume with it (the CLI's defaults would differ).
    saved = json.loads((finished_run / "config.json").read_text(encoding="utf-8"))
    from engine.cli.commands.train import consume
    from engine.config import RunConfig

    capsys.readouterr()  # the fixture's own training logged to stderr
    assert consume(RunConfig.from_dict(saved), resume=True, out=sys.stdout) == 1
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert err.splitlines() == [err] and err.startswith("peel train: error: ")
    assert latest.name in err and "corrupt" in err


def test_debug_shows_the_traceback_of_an_expected_failure(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["--debug", *train_argv(tmp_path / "empty", tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "InputError" in err
    assert err.strip().splitlines()[-1].startswith("peel train: error: no readable images")


def test_a_bug_says_it_is_one(cli_logging, tiny_demo_folder, tmp_path, capsys, monkeypatch) -> None:
    import engine.train.setup as setup

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(setup, "build_method", broken)
    assert main(train_argv(tiny_demo_folder, tmp_path / "run")) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err  # logged by the trainer, to be pasted into a report
    last = err.strip().splitlines()[-1]
    assert last == "peel train: internal error, please report: ZeroDivisionError: a bug"


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_threads_must_be_positive(tmp_path: Path, capsys, value: str) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train", str(tmp_path), "--out", str(tmp_path / "run"), "--threads", value])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("peel train: error: argument --threads: ")
    assert "Traceback" not in "\n".join(err)


def test_train_help_shows_defaults(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for option, default in [("--size", "64"), ("--batch", "32"), ("--device", "auto"),
                            ("--seed", "0")]:
        start = text.index(option + " ", text.index("options:"))
        assert f"(default: {default}" in text[start:start + 400], option


def test_a_run_folder_that_cannot_be_made_is_one_line(tiny_demo_folder, tmp_path, capsys) -> None:
    """A file where the run folder's parent should be (as a read-only mount) was a traceback at
    the first write of config.json."""
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    err = fails(capsys, train_argv(tiny_demo_folder, blocker / "run"), 2)
    assert "cannot write to the run folder" in err and "a file is in the way" in err


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_minutes_must_be_a_finite_number(tiny_demo_folder, tmp_path, capsys, value) -> None:
    """Both passed the ``<= 0`` check, ran no step and wrote an untrained segmenter, exit 0."""
    argv = train_argv(tiny_demo_folder, tmp_path / "run")
    argv[argv.index("--steps"):argv.index("--steps") + 2] = ["--minutes", value]
    err = fails(capsys, argv, 2)
    assert "minutes must be a positive number" in err
    assert not (tmp_path / "run" / "segmenter.pt").exists()


def test_a_folder_of_only_bad_files_says_why_and_leaves_no_run(tmp_path, capsys) -> None:
    """The refusal names the skipped files' reasons (it said only "no readable images"), and no
    config.json is left for a later --resume to "continue"."""
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "text.png").write_text("hello")
    err = fails(capsys, train_argv(bad, tmp_path / "run"), 2)
    assert "no readable images" in err and "2 skipped" in err
    assert "empty.jpg" in err and "text.png" in err
    assert not (tmp_path / "run" / "config.json").exists()


def test_control_characters_of_a_file_name_are_escaped(tiny_demo_folder, tmp_path, capsys) -> None:
    """A name holding an escape sequence recoloured the terminal in the skipped-file warning."""
    (tiny_demo_folder / "bad\x1b[31mred.png").write_text("not an image")
    assert main(train_argv(tiny_demo_folder, tmp_path / "run")) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "bad\\x1b[31mred.png" in out


def test_resume_with_another_folder_says_so(finished_run, tiny_demo_folder, tmp_path) -> None:
    """A moved photo folder may be resumed from, but the user is told which one the run had."""
    import io
    from dataclasses import replace

    from engine.cli.commands.train import consume
    from engine.config import RunConfig

    moved = tmp_path / "moved photos"
    tiny_demo_folder.rename(moved)
    saved = RunConfig.from_dict(json.loads((finished_run / "config.json").read_text("utf-8")))
    out = io.StringIO()
    assert consume(replace(saved, folder=str(moved), steps=3), resume=True, out=out) == 0
    assert (f"resuming with the photos in {moved}; the run was trained on {tiny_demo_folder}"
            in out.getvalue())
    # The same folder spelled another way is not another folder.
    again = io.StringIO()
    assert consume(replace(saved, folder=f"{moved}/.", steps=4), resume=True, out=again) == 0
    assert "resuming with the photos" not in again.getvalue()


def test_cuda_without_a_gpu_is_said_once(cli_logging, tiny_demo_folder, tmp_path, capsys) -> None:
    """It was logged by the device module and shown again as the run's warning."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    argv = train_argv(tiny_demo_folder, tmp_path / "run")
    argv[argv.index("--device") + 1] = "cuda"
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert (captured.out + captured.err).count("CUDA was requested") == 1


def test_a_run_on_few_photos_is_warned(tiny_demo_folder, tmp_path, capsys) -> None:
    """The app flagged a folder under 50 photos before a run; the CLI said nothing."""
    assert main(train_argv(tiny_demo_folder, tmp_path / "run")) == 0
    out = capsys.readouterr().out
    assert "warning: only 12 usable photos" in out and "expect poor masks" in out
