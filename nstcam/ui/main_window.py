"""The main window: shows a `LiveSession` and sends it commands; no frame work on the GUI thread.

    LiveSession (nstcam.live.session): capture -> stylize -> processors -> sinks
        processors: stabilizer (T), OutputControls (nstcam.live.controls: strength, colours, cross-fade;
                    set from the Look toolbar, nstcam.ui.look_bar)
        sinks: LatestResultBridge (display, newest only) -> _on_frame -> VideoView
               RecorderSink (R), VirtualCameraSink (V): fed on the stylize thread, never by the GUI
        callbacks -> Notifier signals -> status line
    Controllers, against the declared surface WindowContext (nstcam.ui.context), each owning its
    actions: SnapshotFlow (Space), RecordingControl (R), VirtualCameraControl (V), LookBar (C, [ ]),
    InstantStyles (a picture chosen, dropped or pasted becomes a style), Menus (nstcam.ui.menus); they report to the status line through `ctx.statusMessage`
    TaskWorkers (one WorkerRegistry): snapshot refinement, thumbnails, finalising recordings
    Dialogs (nstcam.ui.dialogs), remembered settings (nstcam.ui.settings)

While a snapshot is refined on a CPU engine the session pauses stylizing (both would want every
core) and resumes when it ends. `shutdown` (on close, Esc) stops the session and joins every
worker under one deadline, finalising a recording, and reports what did not finish.
"""
from __future__ import annotations

import logging
import time
from collections import deque

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeyEvent
from PySide6.QtWidgets import QMainWindow, QVBoxLayout, QWidget

from nstcam.engines.quick_start import stop_exports
from nstcam.launch import seconds_since_start
from nstcam.live.controls import Look, OutputControls
from nstcam.live.session import LiveSession, SessionOptions
from nstcam.ui.context import WindowContext, WindowOptions
from nstcam.ui.dialogs import report_broken_styles
from nstcam.ui.gallery import StyleGallery, start_thumbnails
from nstcam.ui.instant_styles import InstantStyles
from nstcam.ui.look_bar import LookBar
from nstcam.ui.menus import Menus
from nstcam.ui.recording_control import RecordingControl
from nstcam.ui.settings import SavedSettings, reset_window, restore_layout, window_state
from nstcam.ui.snapshot_flow import SnapshotFlow
from nstcam.ui.status import StallWatch, StatusPanel
from nstcam.ui.toolbar import make_toolbar, new_action
from nstcam.ui.video_view import VideoView
from nstcam.ui.virtual_camera_control import VirtualCameraControl
from nstcam.ui.workers import LatestResultBridge, Notifier, TaskWorker, WorkerRegistry

log = logging.getLogger(__name__)

DEMO = "demo"
SHUTDOWN_SECONDS = 30.0  # every thread and worker joined within this, together
TOP = Qt.ToolBarArea.TopToolBarArea


class MainWindow(QMainWindow):
    """`engine`: a StyleEngine; `registry`: the StyleRegistry it was built from (titles, and the
    style models snapshots refine with); `stabilizer`: a frame processor (toggled with T);
    `virtual_camera`: a sink already opened at launch (--virtual-camera); `settings`: where the
    window remembers its state (None: nothing is remembered, as in most tests).

    The controllers (`snapshots`, `recording`, `virtual_camera`, `look`, `menus`) get the
    declared surface `ctx` (nstcam.ui.context) and own their actions; the window places their
    widgets, binds the keys (`key_bindings`) and shows what they report."""

    frameShown = Signal(object)  # noqa: N815 - every FrameResult painted (tests, benchmarks)
    snapshotFinished = Signal(object)  # noqa: N815 - SnapshotResult
    snapshotFailed = Signal(object)  # noqa: N815 - the exception
    recordingFinished = Signal(object)  # noqa: N815 - the RecorderSink, closed
    closed = Signal()

    def __init__(self, engine, registry, options: WindowOptions | None = None, stabilizer=None,
                 virtual_camera=None, settings: SavedSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.engine, self.registry, self.settings = engine, registry, settings
        self.options = opts = options or WindowOptions()
        if opts.record_size is None:
            self.options.record_size = "camera" if opts.device_type == "cuda" else "processing"
        self.stabilizer = stabilizer
        self.controls = OutputControls(engine, Look(opts.strength, opts.colors), fade=opts.crossfade)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.resize(1100, 760)
        self.first_frame_seconds: float | None = None
        self._display_latency: deque[float] = deque(maxlen=30)
        self._thumbs: TaskWorker | None = None
        self._stall = StallWatch(opts.stall_seconds)
        self._unsaved_said = False  # the settings could not be written: said once

        # 1. The live session; its threads report through the notifier, frames through the display.
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
        # 2. What the controllers may use of the window.
        self.ctx = WindowContext(engine, registry, self.session, opts, self.workers, self.notifier, self)
        # 3. The window's own widgets.
        self.view = VideoView()
        self.gallery = StyleGallery()
        self.status = StatusPanel()
        # 4. Controllers, each with its actions; then the window's own actions.
        self.snapshots = SnapshotFlow(self.ctx, self.controls)
        self.recording = RecordingControl(self.ctx, opts.record_path)
        self.virtual_camera = VirtualCameraControl(self.ctx, virtual_camera)
        self.look = LookBar(engine, self.controls, self)
        self.instant = InstantStyles(self.ctx, self)
        self.stabilize_action = new_action("Stabilize", "Keep textures still when things move (T)", self,
                                           self.set_stabilize, checkable=True,
                                           checked=opts.stabilize and stabilizer is not None)
        self.stabilize_action.setEnabled(stabilizer is not None)
        self.inbetween_action = new_action("In-between", "Show every camera frame: those the style network has no "
                                           "time for are its latest frame moved along the camera's motion (I)",
                                           self, self.set_inbetween, checkable=True, checked=opts.inbetween)
        self.mirror_action = new_action("Mirror", "Flip the image horizontally (M)", self, self.set_mirror,
                                        checkable=True, checked=opts.mirror)
        self.compare_action = new_action("Compare", "Before / after: the camera next to the stylized image (B)",
                                         self, self.view.set_compare, checkable=True)
        self.fullscreen_action = new_action("Full screen", "Toggle full screen (F)", self, self.set_fullscreen,
                                            checkable=True)
        self.demo_action = new_action("Use demo scene", "Switch to the built-in animated scene", self,
                                      self.use_demo_source)
        # 5. Layout: video and gallery, the two toolbars, the snapshot dock, the menus.
        self._layout()
        self.menus = Menus(self.ctx, self.menuBar(), self, list(self.recording.size_actions.values()),
                           [self.instant.from_picture_action])
        self.instant.attach(self.gallery)
        self.setAcceptDrops(True)  # a picture dropped on the window becomes a style
        # 6. Keys: (action, also on auto-repeat); a disabled action ignores its key.
        self.key_bindings: dict[Qt.Key, tuple[QAction, bool]] = {
            Qt.Key.Key_Space: (self.snapshots.action, False), Qt.Key.Key_R: (self.recording.action, False),
            Qt.Key.Key_M: (self.mirror_action, True), Qt.Key.Key_B: (self.compare_action, True),
            Qt.Key.Key_F: (self.fullscreen_action, True), Qt.Key.Key_T: (self.stabilize_action, True),
            Qt.Key.Key_V: (self.virtual_camera.action, True), Qt.Key.Key_C: (self.look.colors_action, True),
            Qt.Key.Key_I: (self.inbetween_action, True)}
        # 7. Connections: what the controllers and the session's threads report.
        self._connect()
        self._previous_on_notice = getattr(engine, "on_notice", None)
        self.engine.on_notice = self.notifier.engine_notice.emit
        self._timer = QTimer(self)
        self._timer.setInterval(500)
        self._timer.timeout.connect(self._refresh_status)
        self.gallery.set_styles([self.ctx.style_row(n) for n in engine.style_names])
        self.gallery.select(engine.style)
        self._update_title()
        if settings is not None:
            restore_layout(self, settings)
        self._on_look_changed()

    # ================================================================== setup
    def _layout(self) -> None:
        central = QWidget()
        col = QVBoxLayout(central)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(0)
        col.addWidget(self.view, 1)
        col.addWidget(self.gallery)
        self.setCentralWidget(central)
        self.setStatusBar(self.status)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.snapshots.dock)
        self.snapshots.dock.hide()
        self.addToolBar(TOP, make_toolbar("Controls", "controls", self, [
            self.snapshots.action, self.recording.action, self.stabilize_action, self.inbetween_action,
            self.virtual_camera.action,
            self.mirror_action, self.compare_action, self.fullscreen_action, None, self.demo_action]))
        self.addToolBarBreak(TOP)
        self.addToolBar(TOP, self.look.bar)

    def _connect(self) -> None:
        self.ctx.statusMessage.connect(self.status.show_status)
        self.ctx.stateChanged.connect(self.remember)
        self.view.overlay.action.connect(self.use_demo_source)
        self.gallery.styleChosen.connect(self.select_style)
        self.snapshots.started.connect(self._show_snapshot_dock)
        self.snapshots.finished.connect(self.snapshotFinished)
        self.snapshots.failed.connect(self.snapshotFailed)
        self.recording.indicator.connect(self.status.set_recording)
        self.recording.finished.connect(self.recordingFinished)
        self.look.changed.connect(self._on_look_changed)
        self.menus.resetRequested.connect(lambda: reset_window(self))
        self.menus.styleAdded.connect(self._style_added)
        self.instant.styleAdded.connect(self._style_added)
        self.instant.styleRemoved.connect(self._style_removed)
        self.instant.trainRequested.connect(lambda picture: self.menus.open_new_style(painting=picture))
        self.display.ready.connect(self._on_frame)
        self.notifier.capture_status.connect(self._on_capture_status)
        self.notifier.engine_notice.connect(self._on_engine_notice)
        self.notifier.stylize_error.connect(lambda exc: self.status.show_status(f"stylizing failed: {exc}", error=True))
        self.notifier.sink_error.connect(self._on_sink_error)

    def _processors(self, on: bool) -> list:
        return ([self.stabilizer] if on and self.stabilizer is not None else []) + [self.controls]

    # ================================================================== lifecycle
    def start(self) -> None:
        """Start the session (and thumbnails after the first frame); call once, after construction."""
        self.virtual_camera.start()
        self._show_source(self.session.source)
        self.session.start()
        self._timer.start()
        report_broken_styles(self.status, list(getattr(self.registry, "errors", []) or []), self)
        if self.options.fullscreen:
            self.fullscreen_action.setChecked(True)

    def _show_source(self, spec: str) -> None:
        self.demo_action.setVisible(spec != DEMO)
        self.view.overlay.hide()
        self.view.placeholder = f"Opening {'the demo scene' if spec == DEMO else spec}…"

    def switch_source(self, spec: str) -> None:
        self.ctx.last_result = None
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
        if self.ctx.closing:
            return []
        self.ctx.closing = True
        self._timer.stop()
        deadline = time.monotonic() + SHUTDOWN_SECONDS
        for worker in self.workers.running():
            worker.cancel()
        stop_exports()  # a thumbnail waiting for its style's export gets an error now, not in seconds
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

    def _show_snapshot_dock(self) -> None:
        dock = self.snapshots.dock
        if not dock.isVisible():
            dock.show()
            self.resizeDocks([dock], [340], Qt.Orientation.Horizontal)

    # ================================================================== frames
    def _on_frame(self) -> None:
        result = self.display.take()
        if result is None or self.ctx.closing:
            return
        if self.ctx.last_result is None and self.first_frame_seconds is None:
            self.first_frame_seconds = seconds_since_start()
            log.info("first stylized frame on screen %.2f s after launch", self.first_frame_seconds)
        self.ctx.last_result = result
        if self._stall.frame_shown(time.monotonic()):
            self.status.show_status("engine responding again")
        self.view.set_frame(result.stylized_rgb, result.raw_bgr)
        if self._thumbs is None and self.options.thumbnails:
            self._thumbs = start_thumbnails(self.ctx, self.gallery)
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
        exporting = getattr(self.engine, "exporting", lambda _name: False)(name)
        self.status.show_status("; ".join(fallbacks) if fallbacks else
                                f"style: {self.ctx.style_row(name)[1]} (--style {name})"
                                + ("; exporting it, a few seconds" if exporting else ""),
                                error=bool(fallbacks))
        self.remember()

    def step_style(self, delta: int) -> None:
        names = list(self.engine.style_names)
        i = names.index(self.engine.style) if self.engine.style in names else 0
        self.select_style(names[(i + delta) % len(names)])

    def _update_title(self) -> None:
        """The style's title and name; Qt appends the application's name ("— nstcam") itself."""
        self.setWindowTitle(f"{self.ctx.style_row(self.engine.style)[1]} ({self.engine.style})")

    def _style_added(self, name: str) -> None:
        """A style trained in the window (File -> New style) is in the engine and the registry."""
        self.gallery.set_styles([self.ctx.style_row(n) for n in self.engine.style_names])
        self.select_style(name)
        start_thumbnails(self.ctx, self.gallery, [name])

    def _style_removed(self, name: str) -> None:
        self.gallery.set_styles([self.ctx.style_row(n) for n in self.engine.style_names])
        self.gallery.select(self.engine.style)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt naming
        if self.instant.accepts(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        if self.instant.drop(event.mimeData()):
            event.acceptProposedAction()

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

    def set_fullscreen(self, on: bool) -> None:
        if on and not self.isFullScreen():
            self.showFullScreen()
        elif not on and self.isFullScreen():
            self.showNormal()

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
        elif key in self.key_bindings and (self.key_bindings[key][1] or not repeat):
            action = self.key_bindings[key][0]
            if action.isEnabled():
                action.toggle() if action.isCheckable() else action.trigger()
        elif key == Qt.Key.Key_Escape:
            self.close()
        else:
            super().keyPressEvent(event)

    # ================================================================== status
    def _refresh_status(self) -> None:
        session, stats, now = self.session, self.engine.stats, time.monotonic()
        if self._stall.check(now, session.frames_captured, session.paused, stats.latency_ms / 1e3):
            log.warning("engine not responding: no stylized frame for %.0f s", self._stall.waited(now))
            self.status.show_status(f"engine not responding: no stylized frame for {self._stall.waited(now):.0f} s "
                                    "while the camera delivers", error=True)
        self.status.set_figures(
            capture_fps=session.capture_fps, stylize_fps=stats.fps, latency_ms=self.display_latency_ms,
            device=" · ".join(filter(None, (self.engine.describe(), self._size_text(), session.describe_inbetween()))),
            stalled=self._stall.stalled)
        error = session.open_error
        if error and session.source != DEMO and self.ctx.last_result is None:
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
        if not self.ctx.closing:
            self.status.show_status(text, error="could not" in text or "stopped" in text)

    def _on_engine_notice(self, text: str) -> None:
        if not self.ctx.closing:
            self.status.show_status(text, error=True)

    def _on_sink_error(self, exc: Exception) -> None:
        if self.ctx.closing:
            return
        self.status.show_status(str(exc), error=True)
        self.recording.failed()
        self.virtual_camera.failed()

    # ================================================================== controls and settings
    def _on_look_changed(self) -> None:
        self.status.controls_label.setText(self.look.describe())
        self.remember()

    def remember(self) -> None:
        """Write the window's state to `settings` (if any): on every change, and at close."""
        if self.settings is not None and not self.settings.put_all(window_state(self)) and not self._unsaved_said:
            self._unsaved_said = True
            text = f"settings not saved: {self.settings.path} cannot be written; changes last until you quit"
            log.warning("%s", text)
            self.status.show_status(text, error=True)

