"""The virtual camera toggle (V): opens a `VirtualCameraSink` on the live session, or closes it.

Without a virtual camera device the toggle is disabled and its tooltip says what to install.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

TIP = "Send the stylized video to a virtual webcam (V)"

if TYPE_CHECKING:
    from nstcam.ui.main_window import MainWindow


def check_virtual_camera(window: MainWindow) -> None:
    """At start-up: disable the toggle, saying what to install, where no virtual camera exists."""
    from nstcam.live.virtualcam import unavailable_reason

    if window.virtual_camera is None and (reason := unavailable_reason()) is not None:
        window.virtual_camera_action.setEnabled(False)
        window.virtual_camera_action.setToolTip(f"{TIP} — unavailable: {reason}")


def toggle_virtual_camera(window: MainWindow, on: bool) -> None:
    from nstcam.live.virtualcam import VirtualCameraSink, VirtualCameraUnavailable

    action, status = window.virtual_camera_action, window.status
    if on and window.virtual_camera is None:
        try:
            window.virtual_camera = VirtualCameraSink()
        except VirtualCameraUnavailable as exc:
            window._set_checked(action, False)
            action.setEnabled(False)
            action.setToolTip(f"{TIP} — unavailable: {exc}")
            status.show_status(str(exc), error=True)
            return
        window.session.add_sink(window.virtual_camera)
        status.show_status(f"virtual camera on: {window.virtual_camera.device}")
    elif not on and window.virtual_camera is not None:
        sink, window.virtual_camera = window.virtual_camera, None
        window.session.remove_sink(sink)
        sink.close(timeout=2.0)
        status.show_status("virtual camera off")


def virtual_camera_failed(window: MainWindow) -> None:
    """After a sink error: if it was the virtual camera (device gone), switch the toggle off."""
    if window.virtual_camera is not None and window.virtual_camera.error is not None:
        window._set_checked(window.virtual_camera_action, False)
        toggle_virtual_camera(window, False)
