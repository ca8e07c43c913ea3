"""The live session: source -> capture thread -> stylize thread -> processors -> sinks, no Qt.

The window (and anything else: the bench, a headless soak) only subscribes to it and sends it
commands: start, stop, switch source, switch style, pause / resume, add / remove sinks, mirror.
Callbacks run on the session's threads; the window turns each into a Qt signal.

    CaptureThread --LatestSlot--> StylizeThread: FramePath(engine, processors) --> Presenter --> SinkFanout
         | on_status     |             | on_error (exception objects)                 ^     |-> display
         v               '----every frame: in-between frames (nstcam.live.inbetween) ---'     |-> recorder
      status text                   errors                                                  '-> virtual cam
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nstcam.live.capture import CaptureThread
from nstcam.live.inbetween import Presenter
from nstcam.live.pipeline import FramePath, FrameProcessor, FrameResult, StylizeThread, Stylizer
from nstcam.live.sinks import FrameSink, SinkFanout

log = logging.getLogger(__name__)

JOIN_SECONDS = 5.0  # what stop() may spend joining the capture and stylize threads


@dataclass
class SessionOptions:
    """`retry_seconds`: how often a failed camera is re-opened; `realtime`: pace files at their
    frame rate (False: as fast as they decode); `inbetween`: show every camera frame, making the
    ones the engine had no time for from its latest result (nstcam.live.inbetween)."""

    mirror: bool = False
    retry_seconds: float = 1.0
    realtime: bool = True
    inbetween: bool = False


class LiveSession:
    """Owns the live threads for one engine; commands may come from any thread except its own."""

    def __init__(
        self,
        engine: Stylizer,
        source: str,
        processors: Sequence[FrameProcessor] = (),
        options: SessionOptions | None = None,
        on_status: Callable[[str], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
        on_sink_error: Callable[[Exception], None] | None = None,
    ) -> None:
        """`on_status`: capture messages; `on_error`: a frame failed to stylize or process;
        `on_sink_error`: a sink failed and was detached. All run on the session's threads."""
        self.engine = engine
        self.source = source
        self.options = options or SessionOptions()
        self.path = FramePath(engine, processors)
        self.sinks = SinkFanout(on_error=on_sink_error)
        self.on_status = on_status
        self.on_error = on_error
        self.capture: CaptureThread | None = None
        self.stylizer: StylizeThread | None = None
        self.presenter: Presenter | None = None
        self._stopped = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self.capture is None and not self._stopped:
            self._start_threads()

    def _start_threads(self) -> None:
        self.capture = CaptureThread(self.source, mirror=self.options.mirror, on_status=self.on_status,
                                     retry_seconds=self.options.retry_seconds, realtime=self.options.realtime)
        self.presenter = Presenter(self.capture.slot, self.path, self.sinks, enabled=self.options.inbetween,
                                   on_error=self.on_error)
        self.stylizer = StylizeThread(self.capture.slot, self.path, self.presenter, on_error=self.on_error)
        self.path.reset()
        self.capture.start()
        self.presenter.start()
        self.stylizer.start()

    def _stop_threads(self, deadline: float) -> list[str]:
        late = []
        threads = (self.capture, self.stylizer, self.presenter)
        self.capture = self.stylizer = self.presenter = None
        for thread in threads:
            if thread is not None and not thread.stop(max(0.0, deadline - time.monotonic())):
                late.append(thread.name)
        return late

    def stop(self, timeout: float = JOIN_SECONDS) -> list[str]:
        """Stop the threads and close every sink under one deadline; returns what did not finish
        in time (logged). Idempotent."""
        deadline = time.monotonic() + timeout
        self._stopped = True
        late = self._stop_threads(deadline)
        late += self.sinks.close(max(0.0, deadline - time.monotonic()))
        if late:
            log.warning("live session: not finished within %.1f s: %s", timeout, ", ".join(late))
        return late

    # ------------------------------------------------------------------ commands
    def switch_source(self, source: str) -> list[str]:
        """Close the current source and open `source`; sinks stay attached."""
        late = self._stop_threads(time.monotonic() + JOIN_SECONDS)
        self.source = source
        if not self._stopped:
            self._start_threads()
        return late

    def switch_style(self, name: str) -> None:
        """Takes effect on the next frame; the processors restart with it (FramePath)."""
        self.engine.set_style(name)  # type: ignore[attr-defined]

    def set_processors(self, processors: Sequence[FrameProcessor]) -> None:
        """Replace the processor chain (e.g. the stabilizer toggled); it starts afresh."""
        self.path.processors = list(processors)
        self.path.reset()

    def set_inbetween(self, on: bool) -> None:
        """Show every camera frame (in-between frames where the engine is slower) or only fresh ones."""
        self.options.inbetween = bool(on)
        if self.presenter is not None:
            self.presenter.enabled = bool(on)

    def set_mirror(self, on: bool) -> None:
        self.options.mirror = bool(on)
        if self.capture is not None:
            self.capture.mirror = bool(on)

    def pause(self, timeout: float = JOIN_SECONDS) -> bool:
        """Stop stylizing after the current frame (capture goes on); blocks until that frame is
        done, so call it off the GUI thread. False if it was not done within `timeout`."""
        stylizer = self.stylizer
        if stylizer is None:
            return True
        stylizer.pause()
        return stylizer.wait_paused(timeout)

    def resume(self) -> None:
        if self.stylizer is not None:
            self.stylizer.resume()

    @property
    def paused(self) -> bool:
        return self.stylizer is not None and self.stylizer.paused

    def add_sink(self, sink: FrameSink) -> None:
        self.sinks.add(sink)

    def remove_sink(self, sink: FrameSink) -> None:
        """Stop offering to `sink`; its owner closes it (finalising a file may take a while)."""
        self.sinks.detach(sink)

    # ------------------------------------------------------------------ figures
    @property
    def capture_fps(self) -> float:
        return self.capture.fps if self.capture is not None else 0.0

    @property
    def shown_fps(self) -> float:
        """Frames passed to the sinks per second, fresh and in-between."""
        return self.presenter.shown_fps if self.presenter is not None else 0.0

    @property
    def inbetween_fps(self) -> float:
        return self.presenter.inbetween_fps if self.presenter is not None else 0.0

    @property
    def fresh_latency_ms(self) -> float | None:
        """Capture to fresh stylization, recent median (nstcam.live.inbetween.Presenter)."""
        return self.presenter.fresh_latency_ms if self.presenter is not None else None

    def describe_inbetween(self) -> str:
        """For the status line: "" when off, else whether in-between frames are being made."""
        if not self.options.inbetween:
            return ""
        made = self.inbetween_fps
        return f"in-between {made:.0f} fps" if made > 0 else "in-between on"

    @property
    def frames_captured(self) -> int:
        return self.capture.frames_captured if self.capture is not None else 0

    @property
    def source_fps(self) -> float:
        return self.capture.source_fps if self.capture is not None else 0.0

    @property
    def open_error(self) -> str | None:
        return self.capture.open_error if self.capture is not None else None

    def latest(self) -> FrameResult | None:
        """The newest result (None before the first); does not wait."""
        got = self.stylizer.results.latest() if self.stylizer is not None else None
        return None if got is None else got[1]
