"""Actions and toolbars: how a controller makes an action, and how the window lays them out.

Each controller creates its own actions with `new_action` (their tooltips name their keys) and
exposes them; the window places them in a toolbar with `make_toolbar`, in the order it lists.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QToolBar, QToolButton, QWidget


def new_action(text: str, tip: str, parent: QObject, slot: Callable, checkable: bool = False,
               checked: bool = False) -> QAction:
    """A toolbar action; `slot` gets `toggled(bool)` if checkable, else `triggered`."""
    act = QAction(text, parent)
    act.setToolTip(tip)
    act.setCheckable(checkable)
    act.setChecked(checked)  # before the slot is connected: the state is already in force
    (act.toggled if checkable else act.triggered).connect(slot)
    return act


def set_checked_quietly(action: QAction, on: bool) -> None:
    """Show a state that is already in force, without running the action's slot again."""
    action.blockSignals(True)
    action.setChecked(on)
    action.blockSignals(False)


def make_toolbar(title: str, name: str, parent: QWidget, actions: Sequence[QAction | None] = ()) -> QToolBar:
    """A fixed toolbar that never takes keyboard focus (the window's keys must reach it);
    `None` in `actions` is a separator."""
    bar = QToolBar(title, parent)
    bar.setObjectName(name)  # saveState/restoreState know it by this
    bar.setMovable(False)
    bar.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    for act in actions:
        if act is None:
            bar.addSeparator()
        else:
            bar.addAction(act)
            unfocus(bar, act)
    return bar


def unfocus(bar: QToolBar, action: QAction) -> QToolButton | None:
    """The action's button in `bar`, made to never take focus."""
    button = bar.widgetForAction(action)
    if isinstance(button, QToolButton):
        button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        return button
    return None
