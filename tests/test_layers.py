"""The architecture's import rules (pyproject's [tool.importlinter] contracts), checked like napari."""
from __future__ import annotations

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
    pytest.importorskip("importlinter")
    from importlinter.cli import lint_imports

    sys.path.insert(0, str(ROOT))
    try:
        assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True) == 0
    finally:
        sys.path.remove(str(ROOT))
