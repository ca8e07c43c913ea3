"""The main window: shows a `LiveSession` and sends it commands; no frame work on the GUI thread.

    LiveSession (nstcam.live.session): capture -> stylize -> processors -> sinks
        processors: stabilizer (T), OutputControls (nstcam.live.controls: strength, colours, cross-fade;
                    set from the Look toolbar, nstcam.ui.look_bar)
        sinks: LatestResultBridge (display, newest only) -> _on_frame -> VideoView
               RecorderSink (R), VirtualCameraSink (V): fed on the stylize thread, never by the GUI
        callbacks -> Notifier signals -> status line
    TaskWorkers (one WorkerRegistry): snapshot refinement, thumbnails, finalising recordings
    Menus (nstcam.ui.menus), dialogs (nstcam.ui.dialogs), remembered settings (nstcam.ui.settings)

While a snapshot is refined on a CPU engine the session pauses stylizing (both would want every
core) and resumes when it ends. `shutdown` (on close, Esc) stops the session and joins every
worker under one deadline, finalising a recording, and reports what did not finish.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeyEvent
from PySide6.QtWidgets import QMainWindow, QVBoxLayout, QWidget

from nstcam.host import userdirs
from nstcam.live.controls import Look, OutputControls
from nstcam.launch import seconds_since_start
from nstcam.live.session import LiveSession, SessionOptions
from nstcam.ui.dialogs import report_broken_styles
from nstcam.ui.gallery import StyleGallery, start_thumbnails
from nstcam.ui.look_bar import LookBar
from nstcam.ui.menus import build_menus
from nstcam.ui.recording_control import RecordingControl
from nstcam.ui.settings import SavedSettings, restore_layout, window_state
from nstcam.ui.snapshot_flow import SnapshotFlow
from nstcam.ui.snapshot_panel import add_snapshot_dock
from nstcam.ui.status import StatusPanel
from nstcam.ui.toolbar import build_toolbar
from nstcam.ui.video_view import VideoView
from nstcam.ui.virtual_camera_control import virtual_camera_failed
from nstcam.ui.workers import LatestResultBridge, Notifier, TaskWorker, WorkerRegistry

log = logging.getLogger(__name__)

DEMO = "demo"
SHUTDOWN_SECONDS = 30.0  # every thread and worker joined within this, together


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


class MainWindow(QMainWindow):
    """`engine`: a StyleEngine; `registry`: the StyleRegistry it was built from (titles, and the
    style models snapshots refine with); `stabilizer`: a frame processor (toggled with T);
    `virtual_camera`: a sink already opened at launch (--virtual-camera); `settings`: where the
    window remembers its state (None: nothing is remembered, as in most tests)."""

    frameShown = Signal(object)  # noqa: N815 - every FrameResult painted (tests, benchmarks)
    snapshotFinished = Signal(object)  # noqa: N815 - SnapshotResult
    snapshotFailed = Signal(object)  # noqa: N815 - the exception
    closed = Signal()

    def __init__(self, engine, registry, options: WindowOptions | None = None, stabilizer=None,
                 virtual_camera=None, settings: SavedSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.engine, self.registry, self.settings = engine, registry, settings
        self.options = opts = options or WindowOptions()
        if opts.record_size is None:
            opts.record_size = "camera" if opts.device_type == "cuda" else "processing"
        self.stabilizer = stabilizer
        self.controls = OutputControls(engine, Look(opts.strength, opts.colors), fade=opts.crossfade)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.resize(1100, 760)

        self.notifier = Notifier(self)
        self.display = LatestResultBridge(self)
        self.workers = WorkerRegistry()
        self.session = LiveSession(
            engine, opts.camera, self._processors(opts.stabilize),
            SessionOptions(mirror=opts.mirror, retry_seconds=opts.retry_seconds, realtime=opts.realtime,
                           inbetween=opts.inbetween),
            on_status=self.notifier.capture_status.emit, on_error=self.notifier.stylize_error.emit,
            on_sink_error=self.notifier.sink_error.emit)
        self.session.add_sink(self.display)
        self.virtual_camera = virtual_camera
        self._thumbs: TaskWorker | None = None
        self._last_result = None
        self.first_frame_seconds: float | None = None
        self._display_latency: deque[float] = deque(maxlen=30)
        self._shut = False

        self.view = VideoView()
        self.view.overlay.action.connect(self.use_demo_source)
        self.gallery = StyleGallery()
        self.gallery.styleChosen.connect(self.select_style)
        central = QWidget()
        col = QVBoxLayout(central)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(0)
        col.addWidget(self.view, 1)
        col.addWidget(self.gallery)
        self.setCentralWidget(central)
        self.status = StatusPanel()
        self.setStatusBar(self.status)
        self.snapshot_panel, self.snapshot_dock = add_snapshot_dock(self)
        self.snapshots = SnapshotFlow(self)
        self.recording = RecordingControl(self, opts.record_path)
        self.recordingFinished = self.recording.finished
        build_toolbar(self)
        self.look = LookBar(self, self.controls)
        self.look.changed.connect(self._on_look_changed)
        self.colors_action = self.look.colors_action
        build_menus(self)

        self.display.ready.connect(self._on_frame)
        self.notifier.capture_status.connect(self._on_capture_status)
        self.notifier.engine_notice.connect(self._on_engine_notice)
        self.notifier.stylize_error.connect(lambda exc: self.status.show_status(f"stylizing failed: {exc}", error=True))
        self.notifier.sink_error.connect(self._on_sink_error)
        self._previous_on_notice = getattr(engine, "on_notice", None)
        self.engine.on_notice = self.notifier.engine_notice.emit
        self._timer = QTimer(self)
        self._timer.setInterval(500)
        self._timer.timeout.connect(self._refresh_status)
        self.gallery.set_styles([self._style_row(n) for n in engine.style_names])
        self.gallery.select(engine.style)
        self._update_title()
        if settings is not None:
            restore_layout(self, settings)
        self._on_look_changed()

    # ================================================================== setup
    def _processors(self, on: bool) -> list:
        return ([self.stabilizer] if on and self.stabilizer is not None else []) + [self.controls]

    def _style_row(self, name: str) -> tuple[str, str, str]:
        try:
            entry = self.registry.choose(name, self.options.device_type)
        except KeyError:
            return name, name, name
        return name, entry.title, f"{entry.label}\n--style {name} · {entry.variant} variant · {entry.path.name}"

    # ================================================================== lifecycle
    def start(self) -> None:
        """Start the session (and thumbnails after the first frame); call once, after construction."""
        if self.virtual_camera is not None:
            self.session.add_sink(self.virtual_camera)
        self._show_source(self.session.source)
        self.session.start()
        self._timer.start()
        report_broken_styles(self)
        if self.options.fullscreen:
            self.fullscreen_action.setChecked(True)

    def _show_source(self, spec: str) -> None:
        self.demo_action.setVisible(spec != DEMO)
        self.view.overlay.hide()
        self.view.placeholder = f"Opening {'the demo scene' if spec == DEMO else spec}…"

    def switch_source(self, spec: str) -> None:
        self._last_result = None
        self.view.clear()
        self._show_source(spec)
        self.session.switch_source(spec)
        self.status.show_status(f"source: {'demo scene' if spec == DEMO else spec}")

    def use_demo_source(self) -> None:
        if self.session.source != DEMO:
            self.switch_source(DEMO)

    def shutdown(self) -> list[str]:
        """Stop the session and every worker under one deadline, finalising a recording; returns
        (and logs) what did not finish. Idempotent."""
        if self._shut:
            return []
        self._shut = True
        self._timer.stop()
        deadline = time.monotonic() + SHUTDOWN_SECONDS
        for worker in self.workers.running():
            worker.cancel()
        late = self.session.stop(timeout=SHUTDOWN_SECONDS / 2)  # closes the recorder and virtual camera
        self.recording.closed_by_session()
        late += self.workers.shutdown(max(0.0, deadline - time.monotonic()))
        self.remember()
        if late:
            log.warning("shutdown: not finished within %.0f s: %s", SHUTDOWN_SECONDS, ", ".join(late))
        self.engine.on_notice = self._previous_on_notice  # the engine outlives the window
        self.closed.emit()
        return late

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.shutdown()
        event.accept()

    # ================================================================== frames
    def _on_frame(self) -> None:
        result = self.display.take()
        if result is None or self._shut:
            return
        if self._last_result is None and self.first_frame_seconds is None:
            self.first_frame_seconds = seconds_since_start()
            log.info("first stylized frame on screen %.2f s after launch", self.first_frame_seconds)
        self._last_result = result
        self.view.set_frame(result.stylized_rgb, result.raw_bgr)
        if self._thumbs is None and self.options.thumbnails:
            self._thumbs = start_thumbnails(self)
        if result.t_captured:
            self._display_latency.append((time.monotonic() - result.t_captured) * 1e3)
        if self.view.overlay.isVisible() and not self.session.open_error:
            self.view.overlay.hide()
        self.recording.first_frame_shown()
        self.frameShown.emit(result)

    @property
    def display_latency_ms(self) -> float | None:
        """Mean capture-to-screen latency over the last 30 frames."""
        return sum(self._display_latency) / len(self._display_latency) if self._display_latency else None

    # ================================================================== styles
    def select_style(self, name: str) -> None:
        if name not in self.engine.style_names:
            return
        old = self.engine.style
        self.session.switch_style(name)
        if name != old:
            self.controls.fade_from(old)
        self.gallery.select(name)
        self._update_title()
        fallbacks = self.registry.fallbacks(name, self.options.device_type)  # a broken file was skipped
        self.status.show_status("; ".join(fallbacks) if fallbacks else
                                f"style: {self._style_row(name)[1]} (--style {name})", error=bool(fallbacks))
        self.remember()

    def step_style(self, delta: int) -> None:
        names = list(self.engine.style_names)
        i = names.index(self.engine.style) if self.engine.style in names else 0
        self.select_style(names[(i + delta) % len(names)])

    def _update_title(self) -> None:
        """The style's title and name; Qt appends the application's name ("— nstcam") itself."""
        self.setWindowTitle(f"{self._style_row(self.engine.style)[1]} ({self.engine.style})")

    # ================================================================== toggles
    def set_mirror(self, on: bool) -> None:
        self.session.set_mirror(on)
        self.remember()

    def set_stabilize(self, on: bool) -> None:
        self.session.set_processors(self._processors(on))
        self.status.show_status("stabilizer on" if on else "stabilizer off")
        self.remember()

    def set_inbetween(self, on: bool) -> None:
        self.session.set_inbetween(on)
        self.status.show_status("in-between frames on: every camera frame shown" if on else "in-between frames off")

    def set_record_size(self, size: str) -> None:
        """For the next recording: "camera" (upscaled) or "processing"."""
        self.options.record_size = size
        self._set_checked(self.record_size_actions[size], True)
        where = "camera resolution" if size == "camera" else "processing size"
        self.status.show_status(f"next recordings at the {where}")
        self.remember()

    def set_fullscreen(self, on: bool) -> None:
        if on and not self.isFullScreen():
            self.showFullScreen()
        elif not on and self.isFullScreen():
            self.showNormal()

    @staticmethod
    def _set_checked(action: QAction, on: bool) -> None:
        action.blockSignals(True)
        action.setChecked(on)
        action.blockSignals(False)

    KEY_ACTIONS = {Qt.Key.Key_M: "mirror_action", Qt.Key.Key_B: "compare_action", Qt.Key.Key_F: "fullscreen_action",
                   Qt.Key.Key_T: "stabilize_action", Qt.Key.Key_V: "virtual_camera_action",
                   Qt.Key.Key_C: "colors_action", Qt.Key.Key_I: "inbetween_action"}

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        key, repeat = event.key(), event.isAutoRepeat()
        mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        if mods not in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.ShiftModifier):
            super().keyPressEvent(event)
        elif Qt.Key.Key_1 <= key <= Qt.Key.Key_9:
            names = self.engine.style_names
            if key - Qt.Key.Key_1 < len(names):
                self.select_style(names[key - Qt.Key.Key_1])
        elif key in (Qt.Key.Key_Left, Qt.Key.Key_Right):
            self.step_style(-1 if key == Qt.Key.Key_Left else +1)
        elif key in (Qt.Key.Key_BracketLeft, Qt.Key.Key_BracketRight):
            self.look.step_strength(-1 if key == Qt.Key.Key_BracketLeft else +1)
        elif key == Qt.Key.Key_Space and not repeat:
            self.snapshots.take()
        elif key == Qt.Key.Key_R and not repeat:
            self.record_action.toggle()
        elif key in self.KEY_ACTIONS:
            action = getattr(self, self.KEY_ACTIONS[key])
            if action.isEnabled():
                action.toggle()
        elif key == Qt.Key.Key_Escape:
            self.close()
        else:
            super().keyPressEvent(event)

    # ================================================================== status
    def _refresh_status(self) -> None:
        session = self.session
        self.status.set_figures(
            capture_fps=session.capture_fps, stylize_fps=self.engine.stats.fps, latency_ms=self.display_latency_ms,
            device=" · ".join(filter(None, (self.engine.describe(), self._size_text(), session.describe_inbetween()))))
        error = session.open_error
        if error and session.source != DEMO and self._last_result is None:
            if not self.view.overlay.isVisible():
                self.view.overlay.show_message(
                    f"{error}.\n\nStill trying every {self.options.retry_seconds:g} s. "
                    "You can use the built-in demo scene meanwhile.", "Use the demo scene")
        elif self.view.overlay.isVisible() and not error:
            self.view.overlay.hide()
        self.recording.refresh()
        self.look.refresh()

    def _size_text(self) -> str:
        size = getattr(self.engine, "size", None)
        return "full resolution" if size is None else f"{size} px"

    def _on_capture_status(self, text: str) -> None:
        if not self._shut:
            self.status.show_status(text, error="could not" in text or "stopped" in text)

    def _on_engine_notice(self, text: str) -> None:
        if not self._shut:
            self.status.show_status(text, error=True)

    def _on_sink_error(self, exc: Exception) -> None:
        if self._shut:
            return
        self.status.show_status(str(exc), error=True)
        self.recording.failed()
        virtual_camera_failed(self)

    def pictures_dir(self) -> Path:
        return self.options.pictures_dir or userdirs.pictures_dir()

    # ================================================================== controls and settings
    def _on_look_changed(self) -> None:
        self.status.controls_label.setText(self.look.describe())
        self.remember()

    def remember(self) -> None:
        """Write the window's state to `settings` (if any): on every change, and at close."""
        if self.settings is not None:
            self.settings.put_all(window_state(self))

