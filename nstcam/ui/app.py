"""QApplication set-up and the window's run loop; `nstcam.cli` calls `run` after validating.

Hidden helpers (not in --help), used for measurements and documentation:

    --benchmark-seconds N   after a warm-up (the first 10 frames shown, then 2 s) measure for N s,
                            print the figures (one line, also as JSON) and quit
    --screenshot PNG        save the window (QWidget.grab) when the benchmark ends, or after
                            ~3 s of frames without --benchmark-seconds, then quit
"""
from __future__ import annotations

import json
import logging
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication

from nstcam.launch import Launch, make_stabilizer, prepare_window
from nstcam.ui.main_window import MainWindow, WindowOptions
from nstcam.ui.settings import SavedSettings

log = logging.getLogger(__name__)

APP_NAME = "nstcam"
WARMUP_FRAMES = 10
WARMUP_SECONDS = 2.0


def ensure_app(argv: list[str] | None = None) -> QApplication:
    # The organisation name stays empty: Qt would insert it as an extra folder level in QSettings.
    QCoreApplication.setApplicationName(APP_NAME)
    app = QApplication.instance()
    if app is None:
        app = QApplication(argv if argv is not None else [sys.argv[0]])
    app.setApplicationDisplayName("nstcam")
    return app  # type: ignore[return-value]


def window_options(launch: Launch) -> WindowOptions:
    args = launch.args
    return WindowOptions(
        camera=launch.camera,
        camera_explicit=launch.camera_explicit,
        mirror=bool(args.mirror),
        fullscreen=bool(args.fullscreen),
        record_path=launch.record_path,
        pictures_dir=launch.pictures_dir,
        videos_dir=Path(args.videos_dir) if getattr(args, "videos_dir", None) else None,
        device_type=launch.device.type,
        stabilize=args.stabilize is not False,
        inbetween=getattr(args, "inbetween", None) is not False,
        strength=1.0 if args.strength is None else args.strength,
        colors=args.preserve_colors or "off",
        crossfade=args.crossfade is not False,
        record_size=args.record_size,
    )


class Benchmark(QObject):
    """Measures the running window from its own figures; see the module docstring."""

    def __init__(self, window: MainWindow, seconds: float | None, screenshot: str | None) -> None:
        super().__init__(window)
        self.window = window
        self.seconds = seconds
        self.screenshot = screenshot
        self.phase = "warmup"
        self.t_start = 0.0
        self.frames0 = 0
        self.latencies: list[float] = []
        self.fresh_latencies: list[float] = []  # capture to fresh stylization, sampled each tick
        self.engine_latencies: list[float] = []
        self.result: dict[str, Any] | None = None
        window.frameShown.connect(self._on_frame)
        self.timer = QTimer(window)
        self.timer.setInterval(100)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def _on_frame(self, result) -> None:
        if self.phase == "measure" and result.t_captured:
            self.latencies.append((time.monotonic() - result.t_captured) * 1e3)
            self.engine_latencies.append(result.latency_ms)

    def _tick(self) -> None:
        w = self.window
        now = time.monotonic()
        if self.phase == "warmup":
            if w.view.frames_shown >= WARMUP_FRAMES:
                self.phase, self.t_start = "settle", now
        elif self.phase == "settle":
            if now - self.t_start >= WARMUP_SECONDS:
                self.phase, self.t_start, self.frames0 = "measure", now, w.view.frames_shown
                self.capture0 = w.session.frames_captured
                self.engine0 = w.engine.stats.frames
        elif self.phase == "measure":
            fresh = w.session.fresh_latency_ms
            if fresh is not None:
                self.fresh_latencies.append(fresh)
            duration = self.seconds if self.seconds else 3.0
            if now - self.t_start >= duration:
                self.finish(now - self.t_start)

    def finish(self, elapsed: float) -> None:
        self.timer.stop()
        w = self.window
        shown = w.view.frames_shown - self.frames0
        stylized = w.engine.stats.frames - self.engine0
        lat = sorted(self.latencies)
        if self.seconds:
            frame = w.view.frame
            self.result = {
                "seconds": round(elapsed, 2),
                "device": w.engine.describe(),
                "size": w.engine.size,
                "frame": None if frame is None else f"{frame.shape[1]}x{frame.shape[0]}",
                "capture_fps": round((w.session.frames_captured - self.capture0) / elapsed, 2),
                "stylize_fps": round(stylized / elapsed, 2),
                "display_fps": round(shown / elapsed, 2),
                "latency_ms_mean": round(sum(lat) / len(lat), 1) if lat else None,
                "latency_ms_p95": round(lat[int(0.95 * (len(lat) - 1))], 1) if lat else None,
                # capture to fresh stylization: in-between frames are made for the newest camera
                # frame, so the latency above hides how old the engine's pictures they move are
                "fresh_latency_ms": round(statistics.median(self.fresh_latencies), 1) if self.fresh_latencies else None,
                # throughput: wall time per stylized frame while measuring (the stylizer is the
                # bottleneck, so this is its per-frame time under the app's real load)
                "stylize_ms": round(1e3 * elapsed / stylized, 1) if stylized else None,
                "capture_to_result_ms": round(sum(self.engine_latencies) / len(self.engine_latencies), 1)
                if self.engine_latencies else None,
            }
            r = self.result
            print(
                f"benchmark {r['device']} size {r['size']} ({r['frame']}): display {r['display_fps']} fps, "
                f"stylize {r['stylize_fps']} fps ({r['stylize_ms']} ms/frame), capture {r['capture_fps']} fps, "
                f"capture-to-screen latency mean {r['latency_ms_mean']} ms, p95 {r['latency_ms_p95']} ms"
            )
            print("BENCHMARK_JSON " + json.dumps(r), flush=True)
        if self.screenshot:
            w.grab().save(self.screenshot)
            print(f"screenshot saved to {self.screenshot}", flush=True)
        w.close()


def run(args, launch: Launch | None = None) -> int:
    """Open the window for parsed `args` (see nstcam.cli); `launch` is launch.prepare_window's."""
    if launch is None:
        launch = prepare_window(args)
    app = ensure_app()
    settings = SavedSettings()
    settings.put_all({"device": args.device, "precision": args.precision})  # they built an engine: keep them
    saved_style = settings.get("style", str)
    if args.style is None and saved_style in launch.engine.style_names:
        launch.engine.set_style(saved_style)  # the style last used, unless --style names one
    window = MainWindow(launch.engine, launch.registry, window_options(launch), stabilizer=make_stabilizer(),
                        virtual_camera=launch.virtual_camera, settings=settings)
    if getattr(args, "benchmark_seconds", None) or getattr(args, "screenshot", None):
        Benchmark(window, args.benchmark_seconds, args.screenshot)  # a child of the window: lives as long
    # Ctrl-C in the terminal, SIGTERM (`kill`, a logout, a service manager) and SIGHUP (the
    # terminal closed) close the window cleanly: the recording is finished and the engine process
    # stopped, not cut off. Python runs signal handlers only when the interpreter gets control, so
    # a timer wakes it up regularly while Qt's loop runs.
    closing = [getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)]
    previous = {sig: signal.signal(sig, lambda *_: window.close()) for sig in closing}
    wakeup = QTimer(window)
    wakeup.timeout.connect(lambda: None)
    wakeup.start(200)
    # Closing the window ends app.exec() through quitOnLastWindowClosed. (Calling app.quit() as
    # well would leave a second Quit event queued after exec() returns; processed later, it puts
    # the application into a permanent "quitting" state in which every nested event loop returns
    # at once, e.g. when the app is run in-process by the tests.)
    app.aboutToQuit.connect(window.shutdown)
    window.show()
    window.start()
    try:
        code = app.exec()
    finally:
        window.shutdown()
        close_engine = getattr(launch.engine, "close", None)  # the engine process, if any
        if close_engine is not None:
            close_engine()
        if launch.background is not None:
            launch.background.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        QCoreApplication.removePostedEvents(app, QEvent.Type.Quit)
    return int(code)
