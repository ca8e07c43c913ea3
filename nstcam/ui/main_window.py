"""The main window: live stylized video, style gallery, snapshot, recording, status line.

Threads and how they talk to the GUI thread (which never runs a network):

    CaptureThread --slot--> StylizeThread --on_result--> LatestResultBridge --ready--> _on_frame
        | on_status                | on_error                (newest only, no backlog)
        v                          v
    Notifier.capture_status    Notifier.stylize_error      --> status line
    StyleEngine.on_notice  --> Notifier.engine_notice      --> status line
    Recorder.on_error      --> Notifier.recorder_error     --> status line, recording stopped
    TaskWorker threads: snapshot (take_snapshot), thumbnails, recorder finalising
        progress / finished / failed signals               --> snapshot panel, gallery

Every callback from another thread only emits a signal; Qt queues it to this thread. While a
snapshot is refined on a CPU engine, live stylizing pauses (both would want every core; run
together they oversubscribe the CPU and each crawls) and resumes when it ends. `shutdown`
(on close, Esc) cancels and joins every thread it started, and finalises a recording.

Recording: each shown frame is written once per *captured* frame it stood for (the capture
sequence numbers tell how many frames the stylizer skipped), at the capture's nominal frame rate,
so a recording plays at real speed even when stylizing is slower than the camera.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices, QKeyEvent, QPixmap
from PySide6.QtWidgets import (
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from nstcam.ui.gallery import StyleGallery
from nstcam.ui.status import StatusPanel
from nstcam.ui.video_view import VideoView, rgb_to_qimage
from nstcam.ui.workers import LatestResultBridge, Notifier, TaskWorker, render_thumbnails

log = logging.getLogger(__name__)

DEMO = "demo"
THUMB_SOURCE_SIZE = (192, 144)  # the demo scene frame the thumbnails are rendered from
THUMB_SHORT_SIDE = 96
MAX_HOLD_SECONDS = 2.0  # a shown frame stands for at most this long in a recording


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
    snapshot_steps: int | None = None  # None: nstcam.snapshot.DEFAULT_STEPS
    snapshot_refine_side: Any = "auto"
    pause_live_while_refining: bool | None = None  # None: pause on CPU engines, not on CUDA
    retry_seconds: float = 1.0
    realtime: bool = True
    thumbnails: bool = True


class SnapshotPanel(QWidget):
    """Progress, Cancel, then the result image and where it was saved."""

    cancelRequested = Signal()  # noqa: N815

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.title = QLabel("Snapshot")
        self.title.setStyleSheet("font-weight: bold;")
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.cancel = QPushButton("Cancel")
        self.cancel.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.cancel.clicked.connect(self.cancelRequested)
        row = QHBoxLayout()
        row.addWidget(self.progress, 1)
        row.addWidget(self.cancel)
        self.image = QLabel()
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setMinimumSize(240, 135)
        self.image.setStyleSheet("background: #121214;")
        self.where = QLabel()
        self.where.setWordWrap(True)
        self.where.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.open_folder = QPushButton("Open folder")
        self.open_folder.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.open_folder.setEnabled(False)
        layout.addWidget(self.title)
        layout.addLayout(row)
        layout.addWidget(self.image, 1)
        layout.addWidget(self.where)
        layout.addWidget(self.open_folder)
        self._pixmap: QPixmap | None = None

    def set_image(self, pixmap: QPixmap | None) -> None:
        self._pixmap = pixmap
        self._rescale()

    def resizeEvent(self, event) -> None:  # noqa: N802, ANN001
        super().resizeEvent(event)
        self._rescale()

    def _rescale(self) -> None:
        if self._pixmap is None or self._pixmap.isNull():
            self.image.clear()
            return
        self.image.setPixmap(self._pixmap.scaled(
            self.image.size(), Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation))


class MainWindow(QMainWindow):
    """`engine`: a StyleEngine; `registry`: the StyleRegistry it was built from (for titles and
    for the style models snapshots refine with)."""

    frameShown = Signal(object)  # noqa: N815 - every FrameResult painted (tests, benchmarks)
    snapshotFinished = Signal(object)  # noqa: N815 - SnapshotResult
    snapshotFailed = Signal(str)  # noqa: N815
    recordingFinished = Signal(object)  # noqa: N815 - the Recorder, closed
    closed = Signal()

    def __init__(self, engine, registry, options: WindowOptions | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.registry = registry
        self.options = opts = options or WindowOptions()
        self.setWindowTitle("nstcam")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.resize(1100, 760)

        self.notifier = Notifier(self)
        self.results = LatestResultBridge(self)
        self.capture = None
        self.stylizer = None
        self.source_spec = opts.camera
        self.recorder = None
        self._record_pending: Path | None = opts.record_path
        self._record_started = 0.0
        self._record_last_seq = 0
        self.recording_frames_shown = 0
        self.recording_frames_written = 0
        self._finalisers: list[TaskWorker] = []
        self._snapshot: TaskWorker | None = None
        self._thumbs: TaskWorker | None = None
        self._last_result = None
        self._live_paused = False
        self._display_latency: deque[float] = deque(maxlen=30)
        self._shown_meter: deque[float] = deque(maxlen=120)
        self._shut = False
        self.last_snapshot = None

        # ---- widgets
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

        self.snapshot_panel = SnapshotPanel()
        self.snapshot_panel.cancelRequested.connect(self.cancel_snapshot)
        self.snapshot_panel.open_folder.clicked.connect(self._open_pictures_folder)
        self.snapshot_dock = QDockWidget("Snapshot", self)
        self.snapshot_dock.setObjectName("snapshot")
        self.snapshot_dock.setWidget(self.snapshot_panel)
        self.snapshot_dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.snapshot_dock.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.snapshot_dock)
        self.snapshot_dock.hide()

        self._build_toolbar()

        # ---- signals from worker threads
        self.results.ready.connect(self._on_frame)
        self.notifier.capture_status.connect(self._on_capture_status)
        self.notifier.engine_notice.connect(self._on_engine_notice)
        self.notifier.stylize_error.connect(lambda m: self.status.show_status(m, error=True))
        self.notifier.recorder_error.connect(self._on_recorder_error)
        self._previous_on_notice = getattr(engine, "on_notice", None)
        self.engine.on_notice = self.notifier.engine_notice.emit

        self._timer = QTimer(self)
        self._timer.setInterval(500)
        self._timer.timeout.connect(self._refresh_status)

        names = list(engine.style_names)
        self.gallery.set_styles([self._style_row(n) for n in names])
        self.gallery.select(engine.style)
        self._update_title()

    # ================================================================== setup
    def _style_row(self, name: str) -> tuple[str, str, str]:
        try:
            entry = self.registry.choose(name, self.options.device_type)
        except Exception:
            return name, name, name
        tip = f"{entry.label}\n{entry.variant} variant · {entry.path.name}"
        return name, entry.title, tip

    def _build_toolbar(self) -> None:
        bar = QToolBar("Controls", self)
        bar.setObjectName("controls")
        bar.setMovable(False)
        bar.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)

        def action(text: str, tip: str, slot: Callable, checkable: bool = False) -> QAction:
            act = QAction(text, self)
            act.setToolTip(tip)
            act.setCheckable(checkable)
            (act.toggled if checkable else act.triggered).connect(slot)
            bar.addAction(act)
            button = bar.widgetForAction(act)
            if isinstance(button, QToolButton):
                button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            return act

        self.snapshot_action = action("Snapshot", "Take a refined snapshot (Space)", self.take_snapshot)
        self.record_action = action("● Record", "Start/stop recording the stylized video (R)",
                                    self._record_toggled, checkable=True)
        self.mirror_action = action("Mirror", "Flip the image horizontally (M)", self.set_mirror, checkable=True)
        self.compare_action = action("Compare", "Show the camera next to the stylized image (C)",
                                     self.view_compare, checkable=True)
        self.fullscreen_action = action("Full screen", "Toggle full screen (F)", self.set_fullscreen, checkable=True)
        bar.addSeparator()
        self.demo_action = action("Use demo scene", "Switch to the built-in animated scene", self.use_demo_source)
        self.mirror_action.setChecked(self.options.mirror)

    # ================================================================== lifecycle
    def start(self) -> None:
        """Start capture and stylizing (and thumbnails); call once, after construction."""
        self._start_pipeline(self.source_spec)
        self._timer.start()
        errors = list(getattr(self.registry, "errors", []) or [])
        if errors:
            names = ", ".join(Path(str(p)).name for p, _ in errors[:3]) + ("…" if len(errors) > 3 else "")
            self.status.show_status(
                f"{len(errors)} style file(s) could not be loaded ({names}); `nstcam styles` says why",
                error=True)
        if self.options.fullscreen:
            self.fullscreen_action.setChecked(True)

    def _start_pipeline(self, spec: str) -> None:
        from nstcam.capture import CaptureThread
        from nstcam.pipeline import StylizeThread

        self.source_spec = spec
        self.demo_action.setVisible(spec != DEMO)
        self.view.overlay.hide()
        self.view.placeholder = f"Opening {'the demo scene' if spec == DEMO else spec}…"
        self.capture = CaptureThread(
            spec, mirror=self.mirror_action.isChecked(), on_status=self.notifier.capture_status.emit,
            retry_seconds=self.options.retry_seconds, realtime=self.options.realtime,
        )
        self.stylizer = StylizeThread(self.capture.slot, self.engine, on_result=self.results.offer,
                                      on_error=self.notifier.stylize_error.emit)
        self.capture.start()
        self.stylizer.start()

    def _stop_pipeline(self) -> None:
        if self.capture is not None:
            self.capture.stop()
        if self.stylizer is not None:
            self.stylizer.stop()
        self.results.clear()

    def switch_source(self, spec: str) -> None:
        self._stop_pipeline()
        self._last_result = None
        self._record_last_seq = 0
        self.view.clear()
        self._start_pipeline(spec)
        self.status.show_status(f"source: {'demo scene' if spec == DEMO else spec}")

    def use_demo_source(self) -> None:
        if self.source_spec != DEMO:
            self.switch_source(DEMO)

    def _start_thumbnails(self) -> None:
        """Render each style's thumbnail; started once the first live frame is shown, so the
        engine settles its set-up (e.g. the CPU memory format) on real frames first."""
        from nstcam.demo import DemoSource

        frame = DemoSource(*THUMB_SOURCE_SIZE).frame_at(75)
        names = list(self.engine.style_names)
        engine = self.engine

        def job(worker: TaskWorker) -> int:
            return render_thumbnails(
                names, lambda name: engine.stylize(frame, style=name, size=THUMB_SHORT_SIDE),
                lambda n, rgb: worker.report(0, 0, (n, rgb)), worker.cancelled,
            )

        self._thumbs = TaskWorker(job, name="thumbnails", parent=self)
        self._thumbs.progress.connect(self._on_thumbnail)
        self._thumbs.start()

    def _on_thumbnail(self, _a: int, _b: int, payload: Any) -> None:
        if not self._shut and isinstance(payload, tuple):
            self.gallery.set_thumbnail(*payload)

    def shutdown(self) -> None:
        """Stop and join every thread; finalise a recording. Idempotent."""
        if self._shut:
            return
        self._shut = True
        self._timer.stop()
        for worker in (self._snapshot, self._thumbs):
            if worker is not None:
                worker.cancel()
        self._stop_pipeline()
        for worker in (self._snapshot, self._thumbs):
            if worker is not None and not worker.join(120):
                log.warning("a worker thread did not finish")
        if self.recorder is not None:
            rec, self.recorder = self.recorder, None
            rec.close()
            self.recordingFinished.emit(rec)
        for worker in self._finalisers:
            worker.join()
        self._finalisers.clear()
        self.engine.on_notice = self._previous_on_notice  # the engine outlives the window
        self.closed.emit()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.shutdown()
        event.accept()

    # ================================================================== frames
    def _on_frame(self) -> None:
        result = self.results.take()
        if result is None or self._shut:
            return
        now = time.monotonic()
        self._last_result = result
        self.view.set_frame(result.stylized_rgb, result.raw_bgr)
        if self._thumbs is None and self.options.thumbnails:
            self._start_thumbnails()
        self._shown_meter.append(now)
        if result.t_captured:
            self._display_latency.append((now - result.t_captured) * 1e3)
        if self.view.overlay.isVisible() and self.capture is not None and not self.capture.open_error:
            self.view.overlay.hide()
        if self._record_pending is not None:
            path, self._record_pending = self._record_pending, None
            self.start_recording(path)
        if self.recorder is not None:
            self._record_frame(result)
        self.frameShown.emit(result)

    @property
    def display_fps(self) -> float:
        """Frames painted per second over the last ~2 s."""
        now = time.monotonic()
        times = [t for t in self._shown_meter if now - t <= 2.0]
        if len(times) < 2 or times[-1] == times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    @property
    def display_latency_ms(self) -> float | None:
        """Mean capture-to-screen latency over the last 30 frames."""
        return sum(self._display_latency) / len(self._display_latency) if self._display_latency else None

    # ================================================================== styles
    def select_style(self, name: str) -> None:
        if name not in self.engine.style_names:
            return
        self.engine.set_style(name)
        self.gallery.select(name)
        self._update_title()
        self.status.show_status(f"style: {self._style_row(name)[1]}")

    def step_style(self, delta: int) -> None:
        names = list(self.engine.style_names)
        if not names:
            return
        i = names.index(self.engine.style) if self.engine.style in names else 0
        self.select_style(names[(i + delta) % len(names)])

    def _update_title(self) -> None:
        name = self.engine.style
        try:
            label = self.registry.choose(name, self.options.device_type).label
        except Exception:
            label = name
        self.setWindowTitle(f"nstcam — {label}")

    # ================================================================== toggles
    def set_mirror(self, on: bool) -> None:
        if self.capture is not None:
            self.capture.mirror = bool(on)
        if self.mirror_action.isChecked() != bool(on):
            self.mirror_action.setChecked(bool(on))

    def view_compare(self, on: bool) -> None:
        self.view.set_compare(bool(on))

    def set_fullscreen(self, on: bool) -> None:
        if on and not self.isFullScreen():
            self.showFullScreen()
        elif not on and self.isFullScreen():
            self.showNormal()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        key = event.key()
        mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        if mods not in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.ShiftModifier):
            super().keyPressEvent(event)
            return
        if Qt.Key.Key_1 <= key <= Qt.Key.Key_9:
            index = key - Qt.Key.Key_1
            names = self.engine.style_names
            if index < len(names):
                self.select_style(names[index])
        elif key == Qt.Key.Key_Left:
            self.step_style(-1)
        elif key == Qt.Key.Key_Right:
            self.step_style(+1)
        elif key == Qt.Key.Key_Space:
            if not event.isAutoRepeat():
                self.take_snapshot()
        elif key == Qt.Key.Key_R:
            if not event.isAutoRepeat():
                self.record_action.toggle()
        elif key == Qt.Key.Key_M:
            self.mirror_action.toggle()
        elif key == Qt.Key.Key_C:
            self.compare_action.toggle()
        elif key == Qt.Key.Key_F:
            self.fullscreen_action.toggle()
        elif key == Qt.Key.Key_Escape:
            self.close()
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    # ================================================================== status
    def _refresh_status(self) -> None:
        cap = self.capture
        stats = self.engine.stats
        self.status.set_figures(
            capture_fps=cap.fps if cap is not None else 0.0,
            stylize_fps=stats.fps,
            latency_ms=self.display_latency_ms,
            device=f"{self.engine.describe()} · {self._size_text()}",
        )
        if cap is not None and cap.open_error and self.source_spec != DEMO and self._last_result is None:
            if not self.view.overlay.isVisible():
                self.view.overlay.show_message(
                    f"{cap.open_error}.\n\nStill trying every {self.options.retry_seconds:g} s. "
                    "You can use the built-in demo scene meanwhile.",
                    "Use the demo scene",
                )
        elif self.view.overlay.isVisible() and cap is not None and not cap.open_error:
            self.view.overlay.hide()
        if self.recorder is not None:
            self.status.set_recording(time.monotonic() - self._record_started, str(self.recorder.path))

    def _size_text(self) -> str:
        size = getattr(self.engine, "size", None)
        return "full resolution" if size is None else f"{size} px"

    def _on_capture_status(self, text: str) -> None:
        if not self._shut:
            self.status.show_status(text, error="could not" in text or "stopped" in text)

    def _on_engine_notice(self, text: str) -> None:
        if not self._shut:
            self.status.show_status(text, error=True)

    # ================================================================== recording
    def _record_toggled(self, on: bool) -> None:
        if on and self.recorder is None and self._record_pending is None:
            self.start_recording()
        elif not on:
            self._record_pending = None
            self.stop_recording()

    def default_record_path(self) -> Path:
        from nstcam.ui import paths

        folder = self.options.videos_dir or paths.videos_dir()
        return folder / f"nstcam-{datetime.now():%Y%m%d-%H%M%S}-{self.engine.style}.mp4"

    def start_recording(self, path: Path | None = None) -> None:
        from nstcam.recorder import Recorder

        if self.recorder is not None or self._shut:
            return
        path = Path(path) if path is not None else self.default_record_path()
        fps = self.capture.source_fps if self.capture is not None else 0.0
        if self._last_result is None or fps <= 0:
            self._record_pending = path  # starts with the first frame shown
            self._set_record_checked(True)
            self.status.show_status(f"recording will start with the first frame: {path}")
            return
        try:
            self.recorder = Recorder(path, fps, on_error=self.notifier.recorder_error.emit)
        except Exception as exc:
            self._set_record_checked(False)
            self.status.show_status(f"cannot record to {path}: {exc}", error=True)
            return
        self._record_started = time.monotonic()
        self._record_last_seq = 0
        self.recording_frames_shown = self.recording_frames_written = 0
        self._set_record_checked(True)
        self.status.set_recording(0.0, str(self.recorder.path))
        self.status.show_status(f"recording to {self.recorder.path} at {fps:.3g} fps")

    def _record_frame(self, result) -> None:
        rec = self.recorder
        hold = 1
        if self._record_last_seq and result.seq > self._record_last_seq:
            hold = min(result.seq - self._record_last_seq, max(1, round(rec.fps * MAX_HOLD_SECONDS)))
        self._record_last_seq = result.seq
        self.recording_frames_shown += 1
        for _ in range(hold):
            rec.write(result.stylized_rgb)
            self.recording_frames_written += 1

    def stop_recording(self) -> None:
        """Stop; the file is finalised on a worker thread (joined at shutdown)."""
        rec, self.recorder = self.recorder, None
        self._set_record_checked(False)
        self.status.set_recording(None)
        if rec is None:
            return

        def finalise(_worker: TaskWorker):
            rec.close()
            return rec

        worker = TaskWorker(finalise, name="recorder-close", parent=self)
        worker.finished.connect(self._on_recording_closed)
        self._finalisers.append(worker)
        worker.start()
        self.status.show_status(f"finishing {rec.path.name}…")

    def _on_recording_closed(self, rec) -> None:
        self._finalisers = [w for w in self._finalisers if w.is_running()]
        if rec.error:
            self.status.show_status(rec.error, error=True)
        elif rec.frames_written:
            dropped = f", {rec.frames_dropped} dropped" if rec.frames_dropped else ""
            self.status.show_status(
                f"saved {rec.path} ({rec.frames_written} frames, {rec.elapsed_seconds:.1f} s{dropped})")
        else:
            self.status.show_status("recording stopped before any frame was written")
        self.recordingFinished.emit(rec)

    def _on_recorder_error(self, text: str) -> None:
        if self._shut:
            return
        self.status.show_status(text, error=True)
        self.stop_recording()

    def _set_record_checked(self, on: bool) -> None:
        self.record_action.blockSignals(True)
        self.record_action.setChecked(on)
        self.record_action.blockSignals(False)

    # ================================================================== snapshots
    @property
    def snapshot_running(self) -> bool:
        return self._snapshot is not None and self._snapshot.is_running()

    def pictures_dir(self) -> Path:
        from nstcam.ui import paths

        return self.options.pictures_dir or paths.pictures_dir()

    def take_snapshot(self) -> None:
        from nstcam import snapshot

        if self._shut:
            return
        if self.snapshot_running:
            self.status.show_status("a snapshot is still being refined (Cancel it in the Snapshot panel)")
            return
        result = self._last_result
        if result is None:
            self.status.show_status("no camera frame yet to take a snapshot of", error=True)
            return
        style = result.style
        try:
            model = self.registry.choose(style, self.options.device_type).model
        except Exception as exc:
            self.status.show_status(f"snapshot: {exc}", error=True)
            return
        refine = snapshot.has_refine_targets(model)
        steps = self.options.snapshot_steps or snapshot.DEFAULT_STEPS
        frame, engine, out_dir = result.raw_bgr, self.engine, self.pictures_dir()
        refine_side = self.options.snapshot_refine_side
        paused = self._pause_live() if refine and self._should_pause_live() else None

        def job(worker: TaskWorker):
            if paused is not None:
                paused.stop()  # joins here, off the GUI thread: it finishes its current frame
            return snapshot.take_snapshot(
                frame, engine, model, out_dir, steps=steps, refine=refine, refine_side=refine_side,
                style=style, progress=worker.report, should_stop=worker.cancelled,
            )

        panel = self.snapshot_panel
        panel.title.setText(f"Snapshot — {self._style_row(style)[1]}")
        panel.progress.setRange(0, steps if refine else 0)
        panel.progress.setValue(0)
        panel.progress.setFormat("stylizing at full resolution…")
        panel.cancel.setEnabled(True)
        panel.where.setText("" if refine else
                            f"This style has no {snapshot.DEFAULT_LOSS_NET} Gram targets: "
                            "saving without refinement.")
        h, w = frame.shape[:2]
        panel.set_image(QPixmap.fromImage(rgb_to_qimage(np.ascontiguousarray(result.stylized_rgb))))
        if not self.snapshot_dock.isVisible():
            self.snapshot_dock.show()
            self.resizeDocks([self.snapshot_dock], [340], Qt.Orientation.Horizontal)
        self._snapshot = worker = TaskWorker(job, name="snapshot", parent=self)
        worker.progress.connect(self._on_snapshot_progress)
        worker.finished.connect(self._on_snapshot_done)
        worker.failed.connect(self._on_snapshot_failed)
        worker.start()
        if paused is not None:
            self.status.show_status(f"snapshot of a {w}x{h} frame: refining; the live view is paused "
                                    "meanwhile (the CPU cannot do both well)")
        else:
            self.status.show_status(f"snapshot of a {w}x{h} frame: refining…" if refine else "snapshot…")

    def _should_pause_live(self) -> bool:
        if self.options.pause_live_while_refining is not None:
            return self.options.pause_live_while_refining
        device = getattr(self.engine, "device", None)
        return getattr(device, "type", str(device)) != "cuda"

    def _pause_live(self):
        """Detach the stylize thread; the snapshot worker stops and joins it off the GUI thread.

        On a CPU, live stylizing and snapshot refinement both want every core; run together,
        torch's thread teams oversubscribe the cores and each crawls (far worse than half speed).
        The capture keeps running; `_resume_live` starts a fresh stylize thread on its slot.
        """
        stylizer, self.stylizer = self.stylizer, None
        self._live_paused = True
        return stylizer

    def _resume_live(self) -> None:
        if not self._live_paused or self._shut:
            return
        from nstcam.pipeline import StylizeThread

        self._live_paused = False
        self._record_last_seq = 0  # the pause is a cut in a recording, not a frozen frame
        if self.capture is not None and self.stylizer is None:
            self.stylizer = StylizeThread(self.capture.slot, self.engine, on_result=self.results.offer,
                                          on_error=self.notifier.stylize_error.emit)
            self.stylizer.start()

    def cancel_snapshot(self) -> None:
        if self.snapshot_running:
            self._snapshot.cancel()
            self.snapshot_panel.cancel.setEnabled(False)
            self.snapshot_panel.progress.setFormat("cancelling…")

    def _on_snapshot_progress(self, step: int, total: int, losses: Any) -> None:
        if self._shut or self._snapshot is None or self._snapshot.cancelled():
            return
        bar = self.snapshot_panel.progress
        bar.setRange(0, total)
        bar.setValue(step)
        style = losses.get("style") if isinstance(losses, dict) else None
        bar.setFormat("refining %v/%m" + (f" · style loss {style:.3g}" if style is not None else ""))

    def _on_snapshot_done(self, res) -> None:
        self.last_snapshot = res
        self._resume_live()
        panel = self.snapshot_panel
        panel.cancel.setEnabled(False)
        if not self._shut:
            panel.progress.setRange(0, 1)
            panel.progress.setValue(1)
            if res.cancelled:
                panel.progress.setFormat("refinement cancelled")
            elif res.refined_path is None:
                panel.progress.setFormat("saved (not refined)")
            else:
                panel.progress.setFormat(f"done in {res.seconds:.0f} s")
            pixmap = QPixmap(str(res.best_path))
            panel.set_image(pixmap if not pixmap.isNull() else None)
            names = [p.name for p in (res.raw_path, res.stylized_path, res.refined_path) if p]
            panel.where.setText(f"Saved to {res.raw_path.parent}:\n" + "\n".join(names))
            panel.where.setToolTip(str(res.best_path))
            panel.open_folder.setEnabled(True)
            self.status.show_status(f"snapshot saved: {res.best_path}")
        self.snapshotFinished.emit(res)

    def _on_snapshot_failed(self, message: str) -> None:
        self._resume_live()
        panel = self.snapshot_panel
        panel.cancel.setEnabled(False)
        if not self._shut:
            panel.progress.setRange(0, 1)
            panel.progress.setValue(0)
            panel.progress.setFormat("failed")
            panel.where.setText(message)
            self.status.show_status(f"snapshot failed: {message}", error=True)
        self.snapshotFailed.emit(message)

    def _open_pictures_folder(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.pictures_dir())))


def running_threads_of(window: MainWindow) -> list[QObject]:
    """For tests: the worker objects of `window` whose threads are still alive."""
    alive: list[Any] = []
    for t in (window.capture, window.stylizer):
        if t is not None and t.is_alive():
            alive.append(t)
    for w in (window._snapshot, window._thumbs, *window._finalisers):
        if w is not None and w.is_running():
            alive.append(w)
    return alive
