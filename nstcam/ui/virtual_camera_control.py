"""The virtual camera toggle (V): opens a `VirtualCameraSink` on the live session, or closes it.

Without a virtual camera device the toggle is disabled and its tooltip says what to install.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

from nstcam.ui.toolbar import new_action, set_checked_quietly

if TYPE_CHECKING:
    from nstcam.live.virtualcam import VirtualCameraSink
    from nstcam.ui.context import WindowContext

TIP = "Send the stylized video to a virtual webcam (V)"


class VirtualCameraControl(QObject):
    """Owns `action` (the toggle) and `sink`, the open virtual camera or None; `sink` may be one
    already opened at launch (--virtual-camera), attached by `start`."""

    def __init__(self, ctx: WindowContext, sink: VirtualCameraSink | None = None) -> None:
        super().__init__(ctx)
        self.ctx = ctx
        self.sink = sink
        self.action = new_action("Virtual camera", TIP, self, self.toggle, checkable=True, checked=sink is not None)
        self._check_available()

    def _check_available(self) -> None:
        """At start-up: disable the toggle, saying what to install, where no virtual camera exists."""
        from nstcam.live.virtualcam import unavailable_reason

        if self.sink is None and (reason := unavailable_reason()) is not None:
            self._unavailable(reason)

    def _unavailable(self, reason: object) -> None:
        self.action.setEnabled(False)
        self.action.setToolTip(f"{TIP} — unavailable: {reason}")

    def start(self) -> None:
        """With the session: send it to the camera opened at launch, if any."""
        if self.sink is not None:
            self.ctx.session.add_sink(self.sink)

    def toggle(self, on: bool) -> None:
        from nstcam.live.virtualcam import VirtualCameraSink, VirtualCameraUnavailable

        ctx = self.ctx
        if on and self.sink is None:
            try:
                self.sink = VirtualCameraSink()
            except VirtualCameraUnavailable as exc:
                set_checked_quietly(self.action, False)
                self._unavailable(exc)
                ctx.report(str(exc), error=True)
                return
            ctx.session.add_sink(self.sink)
            ctx.report(f"virtual camera on: {self.sink.device}")
        elif not on and self.sink is not None:
            sink, self.sink = self.sink, None
            ctx.session.remove_sink(sink)
            sink.close(timeout=2.0)
            ctx.report("virtual camera off")

    def failed(self) -> None:
        """After a sink error: if it was the virtual camera (device gone), switch the toggle off."""
        if self.sink is not None and self.sink.error is not None:
            set_checked_quietly(self.action, False)
            self.toggle(False)
