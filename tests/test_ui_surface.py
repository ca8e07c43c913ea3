"""The window's controllers use a declared surface (nstcam.ui.context), not the window's insides."""
from __future__ import annotations

import ast
from pathlib import Path

UI = Path(__file__).resolve().parents[1] / "nstcam" / "ui"
OWN = {"self", "cls"}


def _sources() -> dict[str, ast.Module]:
    return {p.name: ast.parse(p.read_text(), str(p)) for p in sorted(UI.glob("*.py"))}


def test_no_private_member_of_another_object_is_used() -> None:
    """`x._name` only on self/cls: a private member is its own file's business."""
    found = [f"{name}:{node.lineno} .{node.attr}" for name, tree in _sources().items() for node in ast.walk(tree)
             if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
             and not (isinstance(node.value, ast.Name) and node.value.id in OWN)
             and not (isinstance(node.value, ast.Call) and getattr(node.value.func, "id", "") == "super")]
    assert found == []


def test_no_attribute_is_added_to_an_object_from_outside() -> None:
    """`window.thing = ...` (a name's attribute set, not self's) is how undeclared attributes of
    the window crept in; a field of an options record is set as `self.options.field`."""
    found = []
    for name, tree in _sources().items():
        for node in ast.walk(tree):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] \
                if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
            for target in targets:
                for t in target.elts if isinstance(target, ast.Tuple) else [target]:
                    if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id not in OWN:
                        found.append(f"{name}:{t.lineno} {t.value.id}.{t.attr}")
    assert found == []
