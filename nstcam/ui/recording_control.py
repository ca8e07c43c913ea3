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

from nstcam.host import userdirs
from nstcam.ui.workers import TaskWorker

if TYPE_CHECKING:
    from nstcam.live.sinks import RecorderSink
    from nstcam.ui.main_window import MainWindow

FINALISE_SECONDS = 30.0


class RecordingControl(QObject):
    finished = Signal(object)  # the RecorderSink, closed

    def __init__(self, window: MainWindow, pending: Path | None = None) -> None:
        super().__init__(window)
        self.window = window
        self.sink: RecorderSink | None = None
        self.pending = pending
        self.started = 0.0
        self.size_text = ""

    def toggled(self, on: bool) -> None:
        if on and self.sink is None and self.pending is None:
            self.start()
        elif not on:
            self.pending = None
            self.stop()

    def folder(self) -> Path:
        return self.window.options.videos_dir or userdirs.videos_dir()

    def default_path(self) -> Path:
        return self.folder() / f"nstcam-{datetime.now():%Y%m%d-%H%M%S}-{self.window.engine.style}.mp4"

    def first_frame_shown(self) -> None:
        if self.pending is not None:
            path, self.pending = self.pending, None
            self.start(path)

    def start(self, path: Path | None = None) -> None:
        from nstcam.live.controls import CameraSizeRecorderSink
        from nstcam.launch import app_version
        from nstcam.live.recorder import Recorder, RecorderError
        from nstcam.live.sinks import RecorderSink

        w = self.window
        if self.sink is not None or w._shut:
            return
        path = Path(path) if path is not None else self.default_path()
        fps = w.session.source_fps
        if w._last_result is None or fps <= 0:
            self.pending = path
            w._set_checked(w.record_action, True)
            w.status.show_status(f"recording will start with the first frame: {path}")
            return
        camera = w.options.record_size == "camera"
        shape = (w._last_result.raw_bgr if camera else w._last_result.stylized_rgb).shape
        self.size_text = f"{shape[1]}×{shape[0]} {'camera' if camera else 'processing size'}"
        comment = f"nstcam {app_version()}: style {w.engine.style}, {self.size_text}"
        try:
            recorder = Recorder(path, fps, on_error=lambda m: w.notifier.sink_error.emit(RecorderError(m)),
                                metadata={"comment": comment})
        except (OSError, RecorderError, ValueError) as exc:
            w._set_checked(w.record_action, False)
            w.status.show_status(f"cannot record to {path}: {exc}", error=True)
            return
        self.sink = (CameraSizeRecorderSink if camera else RecorderSink)(recorder)
        w.session.add_sink(self.sink)
        self.started = time.monotonic()
        w._set_checked(w.record_action, True)
        self.refresh()
        w.status.show_status(f"recording {self.size_text} to {recorder.path} at {fps:.3g} fps")

    def refresh(self) -> None:
        if self.sink is not None:
            self.window.status.set_recording(time.monotonic() - self.started, str(self.sink.recorder.path),
                                             self.size_text)

    def stop(self) -> None:
        """Stop feeding the recorder; the file is finalised on a worker thread."""
        w = self.window
        sink, self.sink = self.sink, None
        w._set_checked(w.record_action, False)
        w.status.set_recording(None)
        if sink is None:
            return
        w.session.remove_sink(sink)

        def finalise(_worker: TaskWorker):
            sink.close(timeout=FINALISE_SECONDS)
            return sink

        worker = TaskWorker(finalise, name="recorder-close", parent=self)
        worker.finished.connect(self._closed)
        w.workers.start(worker)
        w.status.show_status(f"finishing {sink.recorder.path.name}…")

    def closed_by_session(self) -> None:
        """At shutdown the session closed the sink (and finalised the file) itself."""
        if self.sink is not None:
            sink, self.sink = self.sink, None
            self.finished.emit(sink)

    def failed(self) -> None:
        if self.sink is not None and self.sink.recorder.error:
            self.stop()

    def _closed(self, sink: RecorderSink) -> None:
        rec, status = sink.recorder, self.window.status
        if rec.error:
            status.show_status(rec.error, error=True)
        elif rec.frames_written:
            dropped = f", {rec.frames_dropped} dropped" if rec.frames_dropped else ""
            status.show_status(f"saved {rec.path} ({rec.frames_written} frames, {rec.elapsed_seconds:.1f} s{dropped})")
        else:
            status.show_status("recording stopped before any frame was written")
        self.finished.emit(sink)
