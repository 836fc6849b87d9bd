"""Atomic writes: a failed write leaves neither a partial target nor a temp file behind."""

import os
import stat

import pytest

from engine.atomic import write_json, write_text, write_with


def test_write_replaces_whole_file_with_normal_permissions(tmp_path):
    target = tmp_path / "out" / "a.txt"
    write_text(target, "first")
    write_text(target, "second")
    assert target.read_text() == "second"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in target.parent.iterdir()] == ["a.txt"]


def test_failed_write_keeps_old_content_and_leaves_no_temp(tmp_path):
    target = tmp_path / "state.json"
    write_json(target, {"step": 1})

    def broken(fh):
        fh.write(b"half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_with(target, broken)
    assert target.read_text().strip().startswith("{")
    assert '"step": 1' in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
