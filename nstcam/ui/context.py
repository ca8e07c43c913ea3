"""What the window's controllers may use of it: one declared surface instead of the whole window.

    WindowContext: engine, registry, session, options, workers, notifier (read)
                   last_result, closing (written by the window only)
                   report(text) -> statusMessage signal -> the window's status line
                   changed()    -> stateChanged signal  -> the window remembers its settings

A controller (snapshot flow, recording, virtual camera, menus, look bar, new style dialog) gets
a context, creates and owns its actions and widgets, and hands them to the window to place; it
never reaches into the window, so what each one depends on is written in its constructor.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from nstcam.host import userdirs

if TYPE_CHECKING:
    from nstcam.live.pipeline import FrameResult
    from nstcam.live.session import LiveSession
    from nstcam.registry import StyleRegistry
    from nstcam.ui.workers import Notifier, WorkerRegistry


@dataclass
class WindowOptions:
    camera: str = "0"
    camera_explicit: bool = False
    mirror: bool = False
    fullscreen: bool = False
    record_path: Path | None = None
    pictures_dir: Path | None = None
    videos_dir: Path | None = None
    device_type: str = "cpu"
    snapshot_steps: int | None = None  # None: nstcam.jobs.snapshot.DEFAULT_STEPS
    snapshot_refine_side: Any = "auto"
    pause_live_while_refining: bool | None = None  # None: pause on CPU engines, not on CUDA
    retry_seconds: float = 1.0
    realtime: bool = True
    thumbnails: bool = True
    stabilize: bool = True
    inbetween: bool = True  # every camera frame shown (nstcam.live.inbetween)
    strength: float = 1.0
    colors: str = "off"  # nstcam.live.controls.COLOR_MODES
    crossfade: bool = True
    record_size: str | None = None  # "camera" | "processing"; None: camera on CUDA, processing on CPU
    stall_seconds: float = 5.0  # no stylized frame this long while the camera delivers: "not responding"


class WindowContext(QObject):
    """The surface controllers share; `statusMessage(text, error)` and `stateChanged()` go to the
    window, which owns the status line and the settings."""

    statusMessage = Signal(str, bool)  # noqa: N815 - Qt naming
    stateChanged = Signal()  # noqa: N815 - something the window remembers changed

    def __init__(self, engine, registry: StyleRegistry, session: LiveSession, options: WindowOptions,
                 workers: WorkerRegistry, notifier: Notifier, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine, self.registry, self.session = engine, registry, session
        self.options, self.workers, self.notifier = options, workers, notifier
        self.last_result: FrameResult | None = None  # the newest frame shown
        self.closing = False  # set once by the window's shutdown; controllers then stay quiet

    def report(self, text: str, error: bool = False) -> None:
        """A message for the status line."""
        self.statusMessage.emit(text, error)

    def changed(self) -> None:
        """A remembered setting changed (an output folder, the recording size)."""
        self.stateChanged.emit()

    def pictures_dir(self) -> Path:
        return self.options.pictures_dir or userdirs.pictures_dir()

    def videos_dir(self) -> Path:
        return self.options.videos_dir or userdirs.videos_dir()

    def style_row(self, name: str) -> tuple[str, str, str]:
        """(name, title, tooltip) of a style as the gallery shows it; the name alone if unknown."""
        try:
            entry = self.registry.choose(name, self.options.device_type)
        except KeyError:
            return name, name, name
        return name, entry.title, f"{entry.label}\n--style {name} · {entry.variant} variant · {entry.path.name}"
