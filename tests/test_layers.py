"""The architecture's import rules (pyproject's [tool.importlinter] contracts), checked like napari."""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_every_module_outside_the_ui_is_bound_by_the_qt_contract() -> None:
    """A new module must be added to the contract, or Qt could creep into it unnoticed."""
    qt = next(c for c in contracts() if c["forbidden_modules"] == ["PySide6"])
    bound = set(qt["source_modules"])
    modules = {f"nstcam.{p.stem}" for p in (ROOT / "nstcam").glob("*.py") if p.stem not in ("__init__", "__main__")}
    assert modules - bound == set()
    assert "trainer" in bound


def test_import_contracts_hold() -> None:
    """Run in a subprocess: import-linter reconfigures logging in the process that runs it."""
    pytest.importorskip("importlinter")
    run = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()",
         "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout
