"""The window's toolbar: one action per control, each with its key in the tooltip."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QToolBar, QToolButton

from nstcam.ui.virtual_camera_control import TIP as VIRTUAL_CAMERA_TIP
from nstcam.ui.virtual_camera_control import check_virtual_camera, toggle_virtual_camera

if TYPE_CHECKING:
    from nstcam.ui.main_window import MainWindow


def build_toolbar(window: MainWindow) -> None:
    """The window's toolbar; each action becomes an attribute of the window (`record_action`, ...)."""
    bar = QToolBar("Controls", window)
    bar.setObjectName("controls")
    bar.setMovable(False)
    bar.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    window.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)

    def action(text: str, tip: str, slot: Callable, checkable: bool = False) -> QAction:
        act = QAction(text, window)
        act.setToolTip(tip)
        act.setCheckable(checkable)
        (act.toggled if checkable else act.triggered).connect(slot)
        bar.addAction(act)
        button = bar.widgetForAction(act)
        if isinstance(button, QToolButton):
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        return act

    window.snapshot_action = action("Snapshot", "Take a refined snapshot (Space)", window.snapshots.take)
    window.record_action = action("● Record", "Start/stop recording the stylized video (R)",
                                window.recording.toggled, checkable=True)
    window.stabilize_action = action("Stabilize", "Keep textures still when things move (T)",
                                   window.set_stabilize, checkable=True)
    window.inbetween_action = action("In-between", "Show every camera frame: those the style network has no "
                                     "time for are its latest frame moved along the camera's motion (I)",
                                     window.set_inbetween, checkable=True)
    window.virtual_camera_action = action("Virtual camera", VIRTUAL_CAMERA_TIP,
                                        lambda on: toggle_virtual_camera(window, on), checkable=True)
    window.mirror_action = action("Mirror", "Flip the image horizontally (M)", window.set_mirror, checkable=True)
    window.compare_action = action("Compare", "Before / after: the camera next to the stylized image (B)",
                                 window.view.set_compare, checkable=True)
    window.fullscreen_action = action("Full screen", "Toggle full screen (F)", window.set_fullscreen, checkable=True)
    bar.addSeparator()
    window.demo_action = action("Use demo scene", "Switch to the built-in animated scene", window.use_demo_source)
    for act, on in ((window.mirror_action, window.options.mirror), (window.virtual_camera_action, window.virtual_camera),
                    (window.inbetween_action, window.options.inbetween),
                    (window.stabilize_action, window.options.stabilize and window.stabilizer is not None)):
        window._set_checked(act, bool(on))
    window.stabilize_action.setEnabled(window.stabilizer is not None)
    check_virtual_camera(window)
