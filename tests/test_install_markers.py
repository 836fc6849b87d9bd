"""The install picks exactly one onnxruntime per platform (issue 17): the GPU build where it has
wheels, the CPU package elsewhere; both would install the same module over each other."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")

ROOT = Path(__file__).resolve().parents[1]

PLATFORMS = {  # (sys_platform, platform_machine) -> the one package that has wheels there
    ("linux", "x86_64"): "onnxruntime-gpu",
    ("win32", "AMD64"): "onnxruntime-gpu",
    ("linux", "aarch64"): "onnxruntime",
    ("darwin", "arm64"): "onnxruntime",
    ("darwin", "x86_64"): "onnxruntime",
    ("win32", "ARM64"): "onnxruntime",
}


@pytest.mark.parametrize(("platform", "expected"), PLATFORMS.items())
def test_exactly_one_onnxruntime_per_platform(platform: tuple[str, str], expected: str) -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    env = {"sys_platform": platform[0], "platform_machine": platform[1]}
    chosen = [
        req.name for req in map(Requirement, deps)
        if req.name.startswith("onnxruntime") and (req.marker is None or req.marker.evaluate(env))
    ]
    assert chosen == [expected]
