"""The capture thread: keeps the newest camera/file/demo frame in a `LatestSlot`, survives failures.

Opening and reading happen on this thread (opening a camera or a URL can block for seconds), and
every problem becomes an `on_status` message rather than an exception: a camera that cannot be
opened or gets unplugged is re-opened every `retry_seconds` until `stop()`, a video file that ends
starts over. Frames go into `slot` stamped with `time.monotonic()` at capture (see
`LatestSlot.get_stamped`), which the stylize thread turns into capture-to-result latency.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import cv2
import numpy as np

from nstcam.host.timing import RateMeter
from nstcam.live.frames import LatestSlot
from nstcam.live.joins import join_within
from nstcam.live.sources import FrameSource, SourceError, open_source

log = logging.getLogger(__name__)

# A live source may fail a single grab now and then; this many failures in a row means it is gone.
MAX_READ_FAILURES = 5
MIN_SIDE = 8  # frames smaller than this are a driver fault, not a picture


class BadFrame(ValueError):
    """A frame that cannot be turned into BGR uint8; its message says what was wrong."""


def to_bgr8(frame: object) -> np.ndarray:
    """A frame from any source as contiguous BGR uint8 (H, W, 3): grey, BGRA, 16-bit and float
    frames are converted; anything else (wrong rank, channel count, dtype, empty) is BadFrame."""
    if not isinstance(frame, np.ndarray):
        raise BadFrame(f"not an image array ({type(frame).__name__})")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] not in (3, 4)):
        raise BadFrame(f"unexpected shape {frame.shape}")
    if min(frame.shape[:2]) < MIN_SIDE:
        raise BadFrame(f"frame of {frame.shape[1]}x{frame.shape[0]} is too small")
    if frame.dtype == np.uint16:  # some depth/IR cameras
        frame = (frame >> 8).astype(np.uint8)
    elif frame.dtype in (np.float32, np.float64):
        if not np.isfinite(frame).all():
            raise BadFrame("frame holds NaN or infinite values")
        frame = (np.clip(frame, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif frame.dtype != np.uint8:
        raise BadFrame(f"unsupported pixel type {frame.dtype}")
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    elif frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(frame)


class CaptureThread(threading.Thread):
    """Reads frames from `spec` (see `nstcam.live.sources.parse_source`) into `self.slot`.

    `state` is "opening" | "running" | "retrying" | "stopped". `ready` is set once the first open
    attempt has finished, successfully or not; after a failed one `open_error` holds the message
    (the UI can then offer the demo source), and it is cleared by the next successful open.
    `mirror` may be changed at any time. `fps` is the measured delivery rate, `source_fps` the
    source's nominal one, `frame_size` the (w, h) of the frames delivered.
    """

    def __init__(
        self,
        spec: str | int,
        mirror: bool = False,
        on_status: Callable[[str], None] | None = None,
        retry_seconds: float = 1.0,
        realtime: bool = True,
    ) -> None:
        super().__init__(name=f"capture[{spec}]", daemon=True)  # daemon: a hung URL open must not block exit
        self.spec = str(spec)
        self.mirror = mirror
        self.on_status = on_status
        self.retry_seconds = retry_seconds
        self.realtime = realtime
        self.slot: LatestSlot[np.ndarray] = LatestSlot()
        self.state = "opening"
        self.open_error: str | None = None
        self.ready = threading.Event()
        self.source_fps: float = 0.0
        self.frame_size: tuple[int, int] | None = None
        self.description = self.spec
        self._meter = RateMeter()
        self._recovering = False
        self._stop_event = threading.Event()
        self.bad_frames = 0  # frames skipped as corrupt
        self._bad_kinds: set[str] = set()

    @property
    def fps(self) -> float:
        """Frames per second actually delivered over the last couple of seconds."""
        return self._meter.rate

    @property
    def frames_captured(self) -> int:
        return self._meter.count

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask the thread to finish, wake any consumer waiting on the slot, and join; True if the
        thread ended within `timeout`."""
        self._stop_event.set()
        self.slot.close()
        stopped = join_within(self, timeout, f"capture thread for {self.spec} (blocked in the driver?)")
        if stopped:
            self.state = "stopped"
        return stopped

    def _status(self, message: str) -> None:
        log.info("%s", message)
        if self.on_status is not None:
            try:
                self.on_status(message)
            except Exception:  # a broken UI callback must not kill capture
                log.exception("on_status callback failed")

    def run(self) -> None:
        first_attempt = True
        try:
            while not self._stop_event.is_set():
                source = self._open(first_attempt)
                first_attempt = False
                if source is None:
                    self._stop_event.wait(self.retry_seconds)
                    continue
                try:
                    delivered = self._pump(source)
                finally:
                    source.release()
                if self._stop_event.is_set():
                    break
                self._after_end(source, delivered)
        except Exception as exc:  # last resort: report, never raise into the interpreter
            log.exception("capture thread crashed")
            self._status(f"capture stopped after an unexpected error: {exc}")
        finally:
            self.state = "stopped"
            self.ready.set()

    def _open(self, first_attempt: bool) -> FrameSource | None:
        self.state = "retrying" if self._recovering else "opening"
        try:
            source = open_source(self.spec)
        except Exception as exc:  # SourceError, or e.g. an OpenCV backend exception
            message = str(exc) if isinstance(exc, SourceError) else f"{self.spec} could not be opened: {exc}"
            if first_attempt:
                self.open_error = message
                self._status(f"{message} (retrying every {self.retry_seconds:g} s)")
            else:
                log.debug("re-open failed: %s", message)
            self._recovering = True
            self.state = "retrying"
            self.ready.set()
            return None
        if self._recovering:
            self._status(f"{source.description} opened; delivering frames again")
        self._recovering = False
        self.open_error = None
        self.description = source.description
        self.source_fps = source.fps
        self.frame_size = None  # set by the first frame (a driver's announced size may differ)
        self.state = "running"
        self.ready.set()
        return source

    def _pump(self, source: FrameSource) -> int:
        """Read until the source ends, fails or we are stopped; returns the frames delivered."""
        pace = self.realtime and not source.live
        period = 1.0 / source.fps if source.fps > 0 else 0.0
        next_due = time.monotonic()
        delivered = failures = 0
        while not self._stop_event.is_set():
            frame = source.read()
            if frame is None:
                if source.live and failures < MAX_READ_FAILURES:
                    failures += 1
                    self._stop_event.wait(0.02)
                    continue
                return delivered
            failures = 0
            try:
                frame = to_bgr8(frame)
            except BadFrame as exc:
                self._bad_frame(source, exc)
                continue
            now = time.monotonic()
            if self.mirror:
                frame = cv2.flip(frame, 1)
            self._note_size(source, (frame.shape[1], frame.shape[0]))
            self.slot.put(frame, stamp=now)
            self._meter.tick(now)
            delivered += 1
            if pace:
                next_due += period
                delay = next_due - time.monotonic()
                if delay > 0:
                    self._stop_event.wait(delay)
                elif delay < -0.25:
                    next_due = time.monotonic()  # fell behind (slow decode): don't burst to catch up
        return delivered

    def _bad_frame(self, source: FrameSource, exc: BadFrame) -> None:
        """Skip the frame; say so once per kind of fault (a broken driver repeats it every frame)."""
        self.bad_frames += 1
        kind = str(exc)
        if kind not in self._bad_kinds:
            self._bad_kinds.add(kind)
            self._status(f"{source.description} delivered a corrupt frame ({kind}); skipping such frames")

    def _note_size(self, source: FrameSource, size: tuple[int, int]) -> None:
        if self.frame_size is not None and size != self.frame_size and self.state == "running":
            self._status(f"{source.description} changed its frame size from "
                         f"{self.frame_size[0]}x{self.frame_size[1]} to {size[0]}x{size[1]}")
        self.frame_size = size

    def _after_end(self, source: FrameSource, delivered: int) -> None:
        if source.is_file and delivered > 0:
            self._status(f"{source.description} ended; restarting")
            return  # re-open at once: loop the video
        if source.is_file:
            self._status(f"{source.description} delivered no frames; retrying…")
        else:
            self._status(f"{source.description} stopped delivering frames; retrying…")
        self._recovering = True
        self.state = "retrying"
        self._meter.reset()
        self._stop_event.wait(self.retry_seconds)
