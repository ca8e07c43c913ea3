"""The README stays true: every test its Reliability table names exists."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_reliability_row_names_an_existing_test() -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Reliability", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "tests/" in line]
    assert len(rows) >= 15
    for row in rows:
        file, name = re.search(r"`(tests/[\w/]+\.py)::(\w+)`", row).groups()
        tree = ast.parse((ROOT / file).read_text())
        names = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
        assert name in names, f"README names {file}::{name}, which does not exist"
