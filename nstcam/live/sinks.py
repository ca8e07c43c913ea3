"""Where stylized frames go: a fan-out to sinks that never block the stylize thread.

A sink takes `FrameResult`s through `offer` (called on the stylize thread, so it must return at
once: hand the frame to a latest-wins slot or a bounded queue) and is closed with a timeout.
`SinkFanout` offers each result to every sink and closes them all under one deadline, reporting
the ones that did not finish. The window's display bridge (nstcam.ui.workers), `RecorderSink`
and the virtual camera (nstcam.live.virtualcam) are sinks.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from nstcam.live.pipeline import FrameResult
from nstcam.live.recorder import Recorder

log = logging.getLogger(__name__)

MAX_HOLD_SECONDS = 2.0  # a stylized frame stands for at most this long in a live recording


class FrameSink(Protocol):
    """`name` for reports; `offer` never blocks a live stylize thread; `close` returns False when
    the sink's own work (e.g. finalising a file) did not finish within `timeout`."""

    name: str

    def offer(self, result: FrameResult) -> None: ...

    def close(self, timeout: float) -> bool: ...


class SinkFanout:
    """Thread-safe list of sinks; a failing sink is reported and removed, the others carry on."""

    def __init__(self, on_error: Callable[[Exception], None] | None = None) -> None:
        self._sinks: list[FrameSink] = []
        self._lock = threading.Lock()
        self.on_error = on_error

    @property
    def sinks(self) -> list[FrameSink]:
        with self._lock:
            return list(self._sinks)

    def add(self, sink: FrameSink) -> None:
        with self._lock:
            self._sinks.append(sink)

    def detach(self, sink: FrameSink) -> bool:
        """Stop offering to `sink` (not closed: its owner closes it); False if it was not here."""
        with self._lock:
            if sink in self._sinks:
                self._sinks.remove(sink)
                return True
            return False

    def offer(self, result: FrameResult) -> None:
        for sink in self.sinks:
            try:
                sink.offer(result)
            except Exception as exc:  # a broken sink must not stop the video or the other sinks
                log.warning("sink %s failed and was detached", sink.name, exc_info=exc)
                self.detach(sink)
                if self.on_error is not None:
                    self.on_error(exc)

    def close(self, timeout: float) -> list[str]:
        """Close every sink within one shared deadline; returns the names that did not finish."""
        deadline = time.monotonic() + timeout
        with self._lock:
            sinks, self._sinks = self._sinks, []
        late = []
        for sink in sinks:
            if not sink.close(max(0.0, deadline - time.monotonic())):
                late.append(sink.name)
        if late:
            log.warning("sinks not closed within %.1f s: %s", timeout, ", ".join(late))
        return late


class RecorderSink:
    """Feeds a `Recorder` at the capture's frame rate, whatever the stylizer's rate.

    Live (`recorder.realtime`), each stylized frame is written once per *captured* frame it stands
    for (the capture sequence numbers tell how many the stylizer skipped, capped at
    `MAX_HOLD_SECONDS`), so a recording plays at real speed even when stylizing is slower than the
    camera. After a break in time (`FrameResult.cut`) the frame is written once: a pause is a
    cut, not a frozen picture; a style switch is no break. Offline (`render`), every result is one
    frame, written at its `t_captured` (render gives the input frame's time, so the output keeps
    the input's timing, a variable frame rate included).
    """

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.name = f"recorder[{recorder.path.name}]"
        self.frames_in = 0  # results offered
        self.frames_written = 0  # frames handed to the recorder, holds included
        self._last_seq = 0
        self._max_hold = max(1, round(recorder.fps * MAX_HOLD_SECONDS))

    def offer(self, result: FrameResult) -> None:
        hold = 1
        if self.recorder.realtime and self._last_seq and not result.cut and result.seq > self._last_seq:
            hold = min(result.seq - self._last_seq, self._max_hold)
        self._last_seq = result.seq
        self.frames_in += 1
        t = None if self.recorder.realtime else result.t_captured
        for _ in range(hold):
            self.recorder.write(result.stylized_rgb, t)
            self.frames_written += 1

    def close(self, timeout: float) -> bool:
        return self.recorder.close(timeout)


class CallbackSink:
    """Calls `fn(result)` on the stylize thread: for consumers whose work is a few microseconds
    (counting, timing in the bench and the tests)."""

    def __init__(self, fn: Callable[[FrameResult], None], name: str = "callback") -> None:
        self.fn = fn
        self.name = name

    def offer(self, result: FrameResult) -> None:
        self.fn(result)

    def close(self, timeout: float) -> bool:
        return True
