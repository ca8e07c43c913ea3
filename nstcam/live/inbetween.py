"""In-between frames: every camera frame shown, even when the style network is slower than the camera.

The stylize thread takes the newest camera frame whenever it is free, so at 10 stylizations a
second from a 30 fps camera, two frames in three are never stylized. For each of those, the
`Presenter` makes an in-between frame instead: the latest fresh stylization (before the look),
moved along the camera's optical flow from the raw frame it was stylized from to the current raw
frame (nstcam.live.flow, the stabilizer's flow), then given the look (strength, colours) with the
current raw frame. What is shown, recorded and sent to the virtual camera then runs at the
camera's rate, while fresh stylizations arrive at the engine's and become the next keyframe.

    capture --every frame--> Presenter thread: in-between from the keyframe --+
       '--newest frame--> StylizeThread --fresh result (keyframe)--> Presenter.offer --+--> sinks

Frames are passed on in capture order, each at most once: a fresh result whose camera frame was
already shown as an in-between only becomes the keyframe. When the engine keeps up (its results
arrive within a camera interval), the presenter waits for them and shows them as they are, so
nothing changes on a fast machine. No in-between frame is made, and the picture waits for the
next fresh stylization (shown as it is), when:

* the keyframe is older than `max_age` seconds (a paused or stalled engine): staleness is bounded;
* the flow cannot carry it: a cut, or too much new ground or occlusion (`RawFlow.is_cut`: too few
  pixels where the moved raw keyframe matches the current frame, or a typical pixel far off).

Where something moved against a still background, the flow check carries the keyframe unmoved
(as the stabilizer does), so a moving object does not drag the background with it. The thread
runs at a lower priority (`NICENESS`): when the CPU is short, fresh stylizations come first.
"""
from __future__ import annotations

import logging
import os
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from nstcam.host.timing import RateMeter
from nstcam.live.flow import RawFlow
from nstcam.live.frames import LatestSlot, Stamped
from nstcam.live.joins import join_within
from nstcam.live.pipeline import POLL_SECONDS, ErrorOnce, FramePath, FrameResult, ResultSink

log = logging.getLogger(__name__)

MAX_AGE_SECONDS = 1.0  # a keyframe is moved onto camera frames at most this much newer than its own
NICENESS = 5  # the in-between thread yields the CPU to the engine when both want it (Linux)


class Inbetweener:
    """Moves the keyframe (the latest fresh stylization) onto newer raw frames.

    `keep` may be called from any thread; `make` from one thread at a time (the flow keeps
    buffers). Counts what it did: `made`, `stale` (keyframe too old), `cuts` (flow not trusted).
    """

    def __init__(self, max_age: float = MAX_AGE_SECONDS, flow: RawFlow | None = None) -> None:
        self.max_age = max_age
        self.flow = flow or RawFlow()
        self.made = self.stale = self.cuts = 0
        self._key: FrameResult | None = None
        self._key_small: tuple[FrameResult, np.ndarray] | None = None  # the keyframe's raw frame for the flow
        # The raw frames lately moved onto, with their grey: a frame's fresh stylization usually
        # arrives after its in-between frame was made (two to four camera frames later), and
        # then becomes the keyframe, whose grey is already known.
        self._measured: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=8)

    def keep(self, result: FrameResult) -> None:
        """`result` (a fresh stylization) is the keyframe from now on."""
        self._key = result

    @property
    def key(self) -> FrameResult | None:
        return self._key

    def make(self, raw_bgr: np.ndarray, seq: int, stamp: float) -> tuple[np.ndarray, FrameResult] | None:
        """The keyframe's picture before the look moved onto `raw_bgr` (camera frame `seq`, captured
        at `stamp`), and the keyframe; None when there is none, it is not older than this frame,
        it is older than `max_age`, or the flow cannot be trusted (a cut, new ground)."""
        key = self._key
        if key is None or seq <= key.seq:
            return None
        if stamp - key.t_captured > self.max_age:
            self.stale += 1
            return None
        base = key.stylized_rgb if key.base_rgb is None else key.base_rgb
        size = (base.shape[1], base.shape[0])
        before = self._small_of(key, size)
        small = self.flow.gray(raw_bgr, size)
        self._measured.append((raw_bgr, small))
        if small.shape != before.shape:  # the camera changed its frame size
            return None
        back = self.flow.back(small, before)  # where each pixel of this frame was in the keyframe's
        weight, static, typical = self.flow.confidence(before, small, back)
        if self.flow.is_cut(weight > 0.5, typical):
            self.cuts += 1
            log.debug("no in-between for frame %d: %.0f%% matches keyframe %d, median difference %.0f",
                      seq, 100 * np.mean(weight > 0.5), key.seq, typical)
            return None
        self.made += 1
        return self.flow.carry(base, back, static), key

    def _small_of(self, key: FrameResult, size: tuple[int, int]) -> np.ndarray:
        cached = self._key_small
        if cached is None or cached[0] is not key:
            w, h = self.flow.gray_size(size)
            small = next((grey for raw, grey in self._measured if raw is key.raw_bgr and grey.shape == (h, w)),
                         None)
            cached = self._key_small = (key, self.flow.gray(key.raw_bgr, size) if small is None else small)
        return cached[1]


class Presenter(threading.Thread):
    """The stylize thread's sink: passes fresh results on to `sink` and, on its own thread, makes
    in-between frames for the camera frames in `frames` that get no fresh result in time.

    `enabled` may be changed at any time (off: fresh results only, as without a presenter).
    `shown_fps` counts every frame passed on, `inbetween_fps` the in-between ones; `ms` holds the
    recent in-between frames' cost (flow, move and look). Errors go to `on_error`, once per kind
    until a frame succeeds, and the thread carries on.
    """

    def __init__(self, frames: LatestSlot[np.ndarray], path: FramePath, sink: ResultSink, enabled: bool = True,
                 inbetweener: Inbetweener | None = None,
                 on_error: Callable[[Exception], None] | None = None) -> None:
        super().__init__(name="inbetween", daemon=True)
        self.frames = frames
        self.path = path
        self.sink = sink
        self.enabled = enabled
        self.inbetweener = inbetweener or Inbetweener()
        self.ms: deque[float] = deque(maxlen=60)
        self._shown_meter = RateMeter()
        self._inbetween_meter = RateMeter()
        self._cond = threading.Condition()
        self._shown = 0  # capture seq of the newest frame passed on
        self._fresh_latency: deque[float] = deque(maxlen=8)  # capture -> fresh result, seconds
        self._intervals: deque[float] = deque(maxlen=8)  # between camera frames, seconds
        self._stop_event = threading.Event()
        self._errors = ErrorOnce("in-between frame", on_error)

    @property
    def shown_fps(self) -> float:
        return self._shown_meter.rate

    @property
    def inbetween_fps(self) -> float:
        return self._inbetween_meter.rate

    @property
    def fresh_latency_ms(self) -> float | None:
        """Median capture-to-result time of the latest fresh stylizations: how old a keyframe's
        camera frame is when the keyframe arrives (None before the first)."""
        with self._cond:
            return 1e3 * statistics.median(self._fresh_latency) if self._fresh_latency else None

    # ------------------------------------------------------------------ the stylize thread's side
    def offer(self, result: FrameResult) -> None:
        """A fresh result: the new keyframe; passed on unless its camera frame was already shown."""
        self.inbetweener.keep(result)
        with self._cond:
            self._fresh_latency.append(result.latency_ms / 1e3)
            if result.cut or result.seq > self._shown:
                self._pass_on(result)
            self._cond.notify_all()

    def _pass_on(self, result: FrameResult) -> None:
        """Under `_cond`, so frames leave in order; sinks return at once (nstcam.live.sinks)."""
        self._shown = result.seq
        self._shown_meter.tick()
        self.sink.offer(result)

    # ------------------------------------------------------------------ the presenter's thread
    def stop(self, timeout: float = 5.0) -> bool:
        """End the thread; True if it was joined within `timeout`."""
        self._stop_event.set()
        with self._cond:
            self._cond.notify_all()
        return join_within(self, timeout, "in-between thread")

    def run(self) -> None:
        _lower_priority(NICENESS)
        last: Stamped[np.ndarray] | None = None
        while not self._stop_event.is_set():
            got = self.frames.get_stamped(after=last.seq if last else 0, timeout=POLL_SECONDS, mark_read=False)
            if got is None:
                if self.frames.closed:
                    break
                continue
            if last is not None and got.seq == last.seq + 1:
                self._intervals.append(got.stamp - last.stamp)
            last = got
            if self.enabled:
                self._await_fresh(got)
                self._show(got)

    def _await_fresh(self, got: Stamped[np.ndarray]) -> None:
        """While the engine keeps up, give its result for this frame until the next frame is due."""
        if not self._fresh_latency or not self._intervals:
            return
        interval = statistics.median(self._intervals)
        if statistics.median(self._fresh_latency) >= interval:
            return  # the engine is slower than the camera: this frame gets no fresh result in time
        with self._cond:
            self._cond.wait_for(lambda: self._shown >= got.seq or self._stop_event.is_set(),
                                timeout=max(0.0, got.stamp + interval - time.monotonic()))

    def _show(self, got: Stamped[np.ndarray]) -> None:
        with self._cond:
            if self._shown >= got.seq:
                return
        t0 = time.perf_counter()
        try:
            made = self.inbetweener.make(got.item, got.seq, got.stamp)
            if made is None:
                return
            moved, key = made
            finished = self.path.finish(got.item, moved)
        except Exception as exc:  # a broken frame or look: report, go on with the next frame
            self._errors.report(exc)
            return
        self._errors.succeeded()
        self.ms.append(1e3 * (time.perf_counter() - t0))
        result = FrameResult(
            seq=got.seq, raw_bgr=got.item, stylized_rgb=finished, style=key.style,
            latency_ms=(time.monotonic() - got.stamp) * 1e3, engine_fps=key.engine_fps, t_captured=got.stamp,
            base_rgb=None if finished is moved else moved, inbetween=True,
        )
        with self._cond:
            if got.seq > self._shown:
                self._pass_on(result)
                self._inbetween_meter.tick()


def _lower_priority(steps: int) -> None:
    """Make the calling thread nicer by `steps`, where the OS has per-thread priorities (Linux):
    in-between frames are best effort, and must not take CPU time fresh stylizations need."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + steps)
    except (AttributeError, OSError) as exc:  # no per-thread priorities here: run as is
        log.debug("in-between thread keeps its priority: %s", exc)
