"""The layering contracts (engine never imports Qt; app sits above engine) hold, and can fail."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lint_imports_exe() -> str:
    beside = Path(sys.executable).with_name("lint-imports")
    found = str(beside) if beside.exists() else shutil.which("lint-imports")
    # Fail, not skip: a missing linter must not pass as a kept contract.
    assert found, "lint-imports not found: install the test extras (pip install -e '.[test]')"
    return found


def run_lint(cwd: Path, extra_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = None
    if extra_path is not None:
        import os

        env = {**os.environ, "PYTHONPATH": str(extra_path)}
    return subprocess.run(
        [lint_imports_exe()], cwd=cwd, capture_output=True, text=True, timeout=300, env=env
    )


def test_contracts_kept() -> None:
    proc = run_lint(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "broken" in proc.stdout and "0 broken" in proc.stdout


def test_contract_breaks_when_engine_imports_qt(tmp_path: Path) -> None:
    # A throwaway project with the same contracts, whose engine imports PySide6: must be reported.
    throwaway_project(tmp_path, {"bad.py": "import PySide6\n"})
    proc = run_lint(tmp_path, extra_path=tmp_path)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "engine.bad" in proc.stdout and "PySide6" in proc.stdout


def test_engine_layer_contract_breaks_when_a_lower_layer_imports_a_higher(tmp_path: Path) -> None:
    throwaway_project(tmp_path, {"nets/bad.py": "import engine.train\n"})
    proc = run_lint(tmp_path, extra_path=tmp_path)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "engine layers BROKEN" in proc.stdout and "engine.nets.bad" in proc.stdout


def test_app_layer_contract_breaks_when_a_panel_imports_the_window(tmp_path: Path) -> None:
    throwaway_project(tmp_path, {}, {"panels/bad.py": "import app.window\n"})
    proc = run_lint(tmp_path, extra_path=tmp_path)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "app layers BROKEN" in proc.stdout and "app.panels.bad" in proc.stdout


def throwaway_project(root: Path, engine_files: dict[str, str],
                      app_files: dict[str, str] | None = None) -> None:
    """A project with Peel's contracts, every engine layer and app module (empty) and the given
    engine and app files."""
    (root / "engine").mkdir()
    (root / "engine" / "__init__.py").write_text("")
    for layer in ("cli", "compare", "export", "train", "methods", "runs", "segmenter", "nets",
                  "parallel"):
        (root / "engine" / layer).mkdir()
        (root / "engine" / layer / "__init__.py").write_text("")
    (root / "engine" / "config.py").write_text("def check():\n    import engine.methods.registry\n")
    (root / "engine" / "methods" / "registry.py").write_text("")
    for name in ("augment.py", "losses.py", "segmenter/augment.py"):  # named by a contract
        (root / "engine" / name).write_text("")
    for name, text in engine_files.items():
        (root / "engine" / name).write_text(text)
    for source in (ROOT / "app").rglob("*.py"):  # the modules the app contracts name
        target = root / source.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("")
    (root / "app" / "__init__.py").write_text("import engine\n")
    for name, text in (app_files or {}).items():
        (root / "app" / name).write_text(text)
    text = (ROOT / "pyproject.toml").read_text()
    (root / "pyproject.toml").write_text(text[text.index("[tool.importlinter]") :])
