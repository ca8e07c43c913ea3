"""The stylize thread: takes the newest captured frame, stylizes it, hands the result on.

It never works through a backlog: each turn it asks the capture slot for the newest frame after
the one it did last, so frames that arrived meanwhile are skipped (and counted as the slot's
`dropped`), and capture-to-result latency stays about one capture interval plus one stylize.
Latency is measured from the capture timestamp that `CaptureThread` stores with each frame in the
slot (`LatestSlot.get_stamped`) to the moment the result is ready.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nstcam.engine import StyleEngine
from nstcam.frames import LatestSlot

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1  # how often a waiting thread checks its stop flag
ERROR_REPEAT_SECONDS = 2.0  # the same error message is reported at most this often


@dataclass(frozen=True)
class FrameResult:
    """One stylized frame. `raw_bgr` is the captured frame as is; `stylized_rgb` is at the engine's
    processing size. `latency_ms`: capture -> result ready. `engine_fps`: stylized frames/s."""

    seq: int
    raw_bgr: np.ndarray
    stylized_rgb: np.ndarray
    style: str
    latency_ms: float
    engine_fps: float
    t_captured: float = 0.0  # time.monotonic() at capture


class StylizeThread(threading.Thread):
    """Consumes `frames`, stylizes with `engine`, publishes to `on_result` and `self.results`.

    `on_result` runs on this thread; keep it short (the UI emits a Qt signal). Exceptions from
    the engine go to `on_error` and the loop carries on with the next frame.
    """

    def __init__(
        self,
        frames: LatestSlot[np.ndarray],
        engine: StyleEngine,
        on_result: Callable[[FrameResult], None],
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(name="stylize", daemon=True)
        self.frames = frames
        self.engine = engine
        self.on_result = on_result
        self.on_error = on_error
        self.results: LatestSlot[FrameResult] = LatestSlot()
        self.errors = 0
        self._stop_event = threading.Event()
        self._last_error: tuple[str, float] | None = None

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the current frame, then end; wakes pollers of `results` and joins."""
        self._stop_event.set()
        if self.ident is not None and threading.current_thread() is not self:
            self.join(timeout)
            if self.is_alive():
                log.warning("stylize thread did not stop within %.1f s", timeout)
        self.results.close()

    def run(self) -> None:
        last = 0
        while not self._stop_event.is_set():
            got = self.frames.get_stamped(after=last, timeout=POLL_SECONDS)
            if got is None:
                if self.frames.closed:
                    break
                continue
            last = got.seq
            style = self.engine.style
            try:
                stylized = self.engine.stylize(got.item, style)
            except Exception as exc:
                self._report(exc)
                continue
            result = FrameResult(
                seq=got.seq,
                raw_bgr=got.item,
                stylized_rgb=stylized,
                style=style,
                latency_ms=(time.monotonic() - got.stamp) * 1e3,
                engine_fps=self.engine.stats.fps,
                t_captured=got.stamp,
            )
            self.results.put(result)
            try:
                self.on_result(result)
            except Exception:
                log.exception("on_result callback failed")
        self.results.close()

    def _report(self, exc: Exception) -> None:
        self.errors += 1
        message = f"stylizing failed: {exc}"
        now = time.monotonic()
        if self._last_error and self._last_error[0] == message and now - self._last_error[1] < ERROR_REPEAT_SECONDS:
            log.debug("%s (repeated)", message)
            return
        self._last_error = (message, now)
        log.error("%s", message, exc_info=exc)
        if self.on_error is not None:
            try:
                self.on_error(message)
            except Exception:
                log.exception("on_error callback failed")
