"""Recording from the window: R starts a `RecorderSink` on the live session, R again stops it.

The sink is fed on the stylize thread (nstcam.live.sinks), so what gets recorded never depends on the
Qt event loop; this object only starts it, shows the REC indicator, and finalises the file on a
worker thread. A recording asked for before the first frame (--record) starts with that frame,
when the camera's frame rate is known. It records at the camera's resolution (the stylized frames
upscaled, nstcam.live.controls.CameraSizeRecorderSink) or at the processing size
(`options.record_size`); the REC indicator says which, and the size.
"""
from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QActionGroup

from nstcam.live.controls import RECORD_SIZES
from nstcam.ui.toolbar import new_action, set_checked_quietly
from nstcam.ui.workers import TaskWorker

if TYPE_CHECKING:
    from nstcam.live.sinks import RecorderSink
    from nstcam.ui.context import WindowContext

FINALISE_SECONDS = 30.0
RECORD_SIZE_TEXT = {"camera": "Record at the camera's resolution (upscaled)",
                    "processing": "Record at the processing size (less CPU)"}


class RecordingControl(QObject):
    """Owns `action` (R, the toolbar's Record) and `size_actions` (the File menu's recording
    sizes, one checked); the REC indicator is sent as `indicator(seconds or None, path, size)`."""

    finished = Signal(object)  # the RecorderSink, closed
    indicator = Signal(object, str, str)

    def __init__(self, ctx: WindowContext, pending: Path | None = None) -> None:
        super().__init__(ctx)
        self.ctx = ctx
        self.sink: RecorderSink | None = None
        self.pending = pending
        self.started = 0.0
        self.size_text = ""
        self.action = new_action("● Record", "Start/stop recording the stylized video (R)", self, self.toggled,
                                 checkable=True)
        group = QActionGroup(self)
        self.size_actions: dict[str, QAction] = {}
        for size in RECORD_SIZES:
            act = QAction(RECORD_SIZE_TEXT[size], self)
            act.setCheckable(True)
            act.setChecked(ctx.options.record_size == size)
            act.triggered.connect(lambda _=False, s=size: self.set_size(s))
            group.addAction(act)
            self.size_actions[size] = act

    def toggled(self, on: bool) -> None:
        if on and self.sink is None and self.pending is None:
            self.start()
        elif not on:
            self.pending = None
            self.stop()

    def set_size(self, size: str) -> None:
        """For the next recording: "camera" (upscaled) or "processing"."""
        self.ctx.options.record_size = size
        set_checked_quietly(self.size_actions[size], True)
        where = "camera resolution" if size == "camera" else "processing size"
        self.ctx.report(f"next recordings at the {where}")
        self.ctx.changed()

    def default_path(self) -> Path:
        return self.ctx.videos_dir() / f"nstcam-{datetime.now():%Y%m%d-%H%M%S}-{self.ctx.engine.style}.mp4"

    def first_frame_shown(self) -> None:
        if self.pending is not None:
            path, self.pending = self.pending, None
            self.start(path)

    def start(self, path: Path | None = None) -> None:
        from nstcam.live.controls import CameraSizeRecorderSink
        from nstcam.launch import app_version
        from nstcam.live.recorder import Recorder, RecorderError
        from nstcam.live.sinks import RecorderSink

        ctx = self.ctx
        if self.sink is not None or ctx.closing:
            return
        path = Path(path) if path is not None else self.default_path()
        fps, last = ctx.session.source_fps, ctx.last_result
        if last is None or fps <= 0:
            self.pending = path
            set_checked_quietly(self.action, True)
            ctx.report(f"recording will start with the first frame: {path}")
            return
        camera = ctx.options.record_size == "camera"
        shape = (last.raw_bgr if camera else last.stylized_rgb).shape
        self.size_text = f"{shape[1]}×{shape[0]} {'camera' if camera else 'processing size'}"
        comment = f"nstcam {app_version()}: style {ctx.engine.style}, {self.size_text}"
        sink_error = ctx.notifier.sink_error
        try:
            recorder = Recorder(path, fps, on_error=lambda m: sink_error.emit(RecorderError(m)),
                                metadata={"comment": comment})
        except (OSError, RecorderError, ValueError) as exc:
            set_checked_quietly(self.action, False)
            ctx.report(f"cannot record to {path}: {exc}", error=True)
            return
        self.sink = (CameraSizeRecorderSink if camera else RecorderSink)(recorder)
        ctx.session.add_sink(self.sink)
        self.started = time.monotonic()
        set_checked_quietly(self.action, True)
        self.refresh()
        ctx.report(f"recording {self.size_text} to {recorder.path} at {fps:.3g} fps")

    def refresh(self) -> None:
        if self.sink is not None:
            self.indicator.emit(time.monotonic() - self.started, str(self.sink.recorder.path), self.size_text)

    def stop(self) -> None:
        """Stop feeding the recorder; the file is finalised on a worker thread."""
        sink, self.sink = self.sink, None
        set_checked_quietly(self.action, False)
        self.indicator.emit(None, "", "")
        if sink is None:
            return
        self.ctx.session.remove_sink(sink)

        def finalise(_worker: TaskWorker):
            sink.close(timeout=FINALISE_SECONDS)
            return sink

        worker = TaskWorker(finalise, name="recorder-close", parent=self)
        worker.finished.connect(self._closed)
        self.ctx.workers.start(worker)
        self.ctx.report(f"finishing {sink.recorder.path.name}…")

    def closed_by_session(self) -> None:
        """At shutdown the session closed the sink (and finalised the file) itself."""
        if self.sink is not None:
            sink, self.sink = self.sink, None
            self.finished.emit(sink)

    def failed(self) -> None:
        if self.sink is not None and self.sink.recorder.error:
            self.stop()

    def _closed(self, sink: RecorderSink) -> None:
        rec, report = sink.recorder, self.ctx.report
        if rec.error:
            report(rec.error, error=True)
        elif rec.frames_written:
            dropped = f", {rec.frames_dropped} dropped" if rec.frames_dropped else ""
            report(f"saved {rec.path} ({rec.frames_written} frames, {rec.elapsed_seconds:.1f} s{dropped})")
        else:
            report("recording stopped before any frame was written")
        self.finished.emit(sink)
