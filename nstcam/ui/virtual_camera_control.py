"""The virtual camera toggle (V): opens a `VirtualCameraSink` on the live session, or closes it.

Without a virtual camera device the toggle is disabled and its tooltip says what to install.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nstcam.ui.main_window import MainWindow


def toggle_virtual_camera(window: MainWindow, on: bool) -> None:
    from nstcam.virtualcam import VirtualCameraSink, VirtualCameraUnavailable

    action, status = window.virtual_camera_action, window.status
    if on and window.virtual_camera is None:
        try:
            window.virtual_camera = VirtualCameraSink()
        except VirtualCameraUnavailable as exc:
            window._set_checked(action, False)
            action.setEnabled(False)
            action.setToolTip(str(exc))
            status.show_status(str(exc), error=True)
            return
        window.session.add_sink(window.virtual_camera)
        status.show_status(f"virtual camera on: {window.virtual_camera.device}")
    elif not on and window.virtual_camera is not None:
        sink, window.virtual_camera = window.virtual_camera, None
        window.session.remove_sink(sink)
        sink.close(timeout=2.0)
        status.show_status("virtual camera off")
