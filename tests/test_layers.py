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


def top_level_parts() -> set[str]:
    """nstcam's modules and subpackages, as the layers contract names them."""
    nstcam = ROOT / "nstcam"
    modules = {p.stem for p in nstcam.glob("*.py") if p.stem not in ("__init__", "__main__")}
    return modules | {p.parent.name for p in nstcam.glob("*/__init__.py")}


def test_every_part_of_nstcam_has_a_layer() -> None:
    """A new module or subpackage must be placed in a layer, or it could import anything."""
    layers = next(c for c in contracts() if c["type"] == "layers")["layers"]
    placed = {name.strip() for layer in layers for name in layer.split("|")}
    assert top_level_parts() - placed == set()


def test_every_part_outside_the_ui_is_bound_by_the_qt_contract() -> None:
    """A new module must be added to the contract, or Qt could creep into it unnoticed."""
    qt = next(c for c in contracts() if c.get("forbidden_modules") == ["PySide6"])
    bound = set(qt["source_modules"])
    assert {f"nstcam.{part}" for part in top_level_parts() - {"ui"}} - bound == set()
    assert "trainer" in bound


@pytest.mark.slow
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
