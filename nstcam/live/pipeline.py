"""One frame path for the window, `render` and the bench: engine, then processors, then sinks.

`FramePath` turns a captured frame into a `FrameResult`: the engine stylizes it, then an ordered
chain of `FrameProcessor`s post-processes it (a temporal stabilizer needs the previous raw and
stylized frames, so the chain keeps state and must be reset wherever the video is discontinuous:
a style switch, a source switch, a resume after a pause, or a gap in capture time).

`StylizeThread` drives a `FramePath` live, the engine on one thread and the chain on another. It
never works through a backlog: each turn it asks the capture slot for the newest frame after the
one it did last, so frames that arrived meanwhile are skipped (and counted as the slot's
`dropped`), and capture-to-result latency stays about one capture interval plus one stylize.
Results go to a `SinkFanout` (nstcam.live.sinks), whose sinks never block these threads.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np

from nstcam.live.frames import LatestSlot, Stamped
from nstcam.live.joins import join_within

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

POLL_SECONDS = 0.1  # how often a waiting thread checks its stop flag
GAP_SECONDS = 0.5  # captured frames further apart than this are a cut, not motion
JOIN_SECONDS = 5.0  # what the stylize thread gives its chain to finish when the source ends


@dataclass(frozen=True)
class FrameResult:
    """One stylized frame. `raw_bgr` is the captured frame as is; `stylized_rgb` is at the engine's
    processing size, after the processors. `latency_ms`: capture -> result ready. `engine_fps`:
    stylized frames/s. `fresh`: the processors were reset before this frame (any discontinuity,
    a style switch included). `cut`: a break in time (a pause, a new source, a gap), across which
    a recording must not stretch the previous frame. `base_rgb`: the frame before the finishing
    stages (the look), which in-between frames move; None: `stylized_rgb`. `inbetween`: made by
    moving an earlier stylization along the camera's motion (nstcam.live.inbetween), not by the
    engine."""

    seq: int
    raw_bgr: np.ndarray
    stylized_rgb: np.ndarray
    style: str
    latency_ms: float
    engine_fps: float
    t_captured: float = 0.0  # time.monotonic() at capture
    fresh: bool = False
    cut: bool = False
    base_rgb: np.ndarray | None = None
    inbetween: bool = False


class FrameProcessor(Protocol):
    """Post-processing of stylized frames, in capture order, on the stylize thread."""

    def process(self, raw_bgr: np.ndarray, stylized_rgb: np.ndarray) -> np.ndarray: ...

    def reset(self) -> None: ...


class FinishingProcessor(FrameProcessor, Protocol):
    """A processor whose work splits in two: `prepare` runs on each fresh stylization (it may keep
    state or call the engine), `finish` on every frame shown, in-between frames included (the look:
    strength, colours). `process` is `finish(prepare(...))`. A chain runs every processor's own
    stage first and the finishing stages last."""

    def prepare(self, raw_bgr: np.ndarray, stylized_rgb: np.ndarray) -> np.ndarray: ...

    def finish(self, raw_bgr: np.ndarray, stylized_rgb: np.ndarray) -> np.ndarray: ...


def _finishes(processor: FrameProcessor) -> bool:
    return callable(getattr(processor, "finish", None)) and callable(getattr(processor, "prepare", None))


class Stylizer(Protocol):
    """What the frame path needs of an engine (nstcam.engines.torch_engine.StyleEngine, the ONNX engine)."""

    @property
    def style(self) -> str: ...

    def stylize(self, frame_bgr: np.ndarray, style: str | None = None) -> np.ndarray: ...


class FramePath:
    """Engine + processor chain for one stream of frames. `run` (or `process`, for frames the
    engine stylized) from one thread at a time; the engine may meanwhile stylize the next frame.

    The chain is reset before the next frame when `reset()` was called (a source switch, a resume),
    when the style changes, when capture time jumps by more than `GAP_SECONDS`, when sequence
    numbers go backwards (a new capture), and when the frame size changes (a camera switching
    modes).
    """

    def __init__(self, engine: Stylizer, processors: Sequence[FrameProcessor] = ()) -> None:
        self.engine = engine
        self.processors = list(processors)
        self._last: tuple[str, float, int, tuple[int, ...]] | None = None  # style, time, seq, shape
        self._reset_pending = True

    def reset(self) -> None:
        """Start afresh with the next frame (thread-safe: only sets a flag)."""
        self._reset_pending = True

    def run(self, frame_bgr: np.ndarray, seq: int = 0, t_captured: float | None = None,
            style: str | None = None) -> FrameResult:
        """Stylize and post-process one frame. Engine errors propagate; the chain's state then
        still describes the previous frame."""
        stamp = time.monotonic() if t_captured is None else t_captured
        style, stylized = self.stylize(frame_bgr, style)
        return self.process(frame_bgr, stylized, seq, stamp, style)

    def stylize(self, frame_bgr: np.ndarray, style: str | None = None) -> tuple[str, np.ndarray]:
        """The engine's half of `run`: the style used (default: the engine's current one) and its picture."""
        style = self.engine.style if style is None else style
        return style, self.engine.stylize(frame_bgr, style)

    def process(self, frame_bgr: np.ndarray, stylized: np.ndarray, seq: int, stamp: float, style: str) -> FrameResult:
        """The chain for `stylized`, the engine's picture of `frame_bgr` in `style`: the half of
        `run` that may run on another thread while the engine works on the next frame."""
        cut = self._cut(stamp, seq)
        fresh = cut or self._last is None or (style, frame_bgr.shape) != (self._last[0], self._last[3])
        processors = self.processors  # one chain per frame, even if another thread swaps it
        if fresh:
            for processor in processors:
                processor.reset()
        for processor in processors:
            if _finishes(processor):
                stylized = processor.prepare(frame_bgr, stylized)  # type: ignore[attr-defined]
            else:
                stylized = processor.process(frame_bgr, stylized)
        base = stylized
        stylized = self.finish(frame_bgr, base, processors)
        self._last = (style, stamp, seq, frame_bgr.shape)
        engine_stats = getattr(self.engine, "stats", None)
        return FrameResult(
            seq=seq, raw_bgr=frame_bgr, stylized_rgb=stylized, style=style,
            latency_ms=(time.monotonic() - stamp) * 1e3,
            engine_fps=engine_stats.fps if engine_stats is not None else 0.0,
            t_captured=stamp, fresh=fresh, cut=cut, base_rgb=None if base is stylized else base,
        )

    def finish(self, frame_bgr: np.ndarray, rgb: np.ndarray,
               processors: Sequence[FrameProcessor] | None = None) -> np.ndarray:
        """`rgb` (made for `frame_bgr`) through the finishing stages of the chain (default: the
        current one): what every frame shown gets, fresh or in-between."""
        for processor in self.processors if processors is None else processors:
            if _finishes(processor):
                rgb = processor.finish(frame_bgr, rgb)  # type: ignore[attr-defined]
        return rgb

    def _cut(self, stamp: float, seq: int) -> bool:
        pending, self._reset_pending = self._reset_pending, False
        if pending or self._last is None:
            return True
        _, last_stamp, last_seq, _ = self._last
        if seq < last_seq:  # a new capture
            return True
        # A gap is time in which the *source* delivered nothing (a camera that stalled), not a slow
        # stylize: frames captured meanwhile (seq advanced) make it continuous video.
        return stamp - last_stamp > GAP_SECONDS * max(1, seq - last_seq)


class ErrorOnce:
    """Logs and passes on an error once: the same error again before a frame succeeds (e.g. an
    allocation that fails every frame) is only counted, so it is one message, not a flood."""

    def __init__(self, what: str, on_error: Callable[[Exception], None] | None) -> None:
        self.what = what
        self.on_error = on_error
        self.count = 0
        self._last: str | None = None  # cleared by the next frame that succeeds

    def report(self, exc: Exception) -> None:
        self.count += 1
        message = f"{self.what} failed: {exc}"
        if self._last == message:
            log.debug("%s (repeated)", message)
            return
        self._last = message
        log.error("%s", message, exc_info=exc)
        if self.on_error is not None:
            self.on_error(exc)

    def succeeded(self) -> None:
        self._last = None


class ResultSink(Protocol):
    """Where results go: a `nstcam.live.sinks.SinkFanout` or anything with `offer`."""

    def offer(self, result: FrameResult) -> None: ...


class ChainThread(threading.Thread):
    """Runs the chain (`FramePath.process`) on frames the engine stylized, on its own thread, and
    passes each result to `deliver`, so the engine can work on the next frame meanwhile.

    Why: an engine rarely keeps every core busy (ONNX Runtime's second thread did 40 % of a core's
    work beside its caller's 100 %; the engine process leaves the app's cores idle while it
    computes), and in line the chain's few milliseconds (stabilizer, look; in `render` the
    encoder's hand-off too) added to every frame. `hand` blocks while the previous frame is still
    in the chain, so at most one frame waits and frames stay in order. Errors go to `on_error` and
    the thread carries on with the next frame.
    """

    def __init__(self, path: FramePath, deliver: Callable[[FrameResult], None],
                 on_error: Callable[[Exception], None]) -> None:
        super().__init__(name="finish", daemon=True)
        self.path = path
        self.deliver = deliver
        self.on_error = on_error
        self._cond = threading.Condition()
        self._item: tuple[np.ndarray, np.ndarray, int, float, str] | None = None
        self._working = False
        self._closed = False

    def hand(self, frame_bgr: np.ndarray, stylized: np.ndarray, seq: int, stamp: float, style: str) -> bool:
        """Queue one stylized frame for the chain, waiting while the previous one is still there;
        False (and dropped) once the thread is closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._item is None or self._closed)
            if self._closed:
                return False
            self._item = (frame_bgr, stylized, seq, stamp, style)
            self._cond.notify_all()
            return True

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every frame handed over has been delivered; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: (self._item is None and not self._working) or not self.is_alive(),
                                       timeout)

    def close(self, timeout: float) -> bool:
        """Finish the frame handed over, if any, then end; True if joined within `timeout`."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        return join_within(self, timeout, "finish thread")

    def run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._item is not None or self._closed)
                item, self._item = self._item, None
                self._working = item is not None
                self._cond.notify_all()
            if item is None:
                return
            try:
                self.deliver(self.path.process(*item))
            except Exception as exc:  # a processor or a sink failed: report, go on with the next frame
                self.on_error(exc)
            finally:
                with self._cond:
                    self._working = False
                    self._cond.notify_all()


def engine_lanes(engine: Stylizer) -> int:
    """How many frames `engine` can usefully stylize at once (`lanes`, e.g. the ONNX Runtime
    engine on a CPU), switched on for a caller that keeps that many in flight; 1 for the others."""
    lanes = int(getattr(engine, "lanes", 1))
    if lanes > 1:
        engine.use_lanes(lanes)  # type: ignore[attr-defined]
    return lanes


def frames_in_flight(lanes: int) -> int:
    """How many frames a caller that stylizes a stream (render, the benchmarks) keeps submitted to
    `lanes`: twice as many for two or more, so a lane whose frame is done before an earlier one's
    takes a waiting frame instead of idling until the earlier one is collected (render: 1.13-1.22x
    the frames/s of keeping only two in flight); one, run at once, for a single lane."""
    return 2 * lanes if lanes > 1 else 1


class _Inline:
    """An executor that runs each call at once on the caller's thread (see `lane_pool`)."""

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as exc:  # raised where the result is taken, as from a pool
            future.set_exception(exc)
        return future

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any]) -> list[Any]:
        return [fn(*args) for args in zip(*iterables)]


def in_order(pool: ThreadPoolExecutor | _Inline, stylize: Callable[[T], R], items: Iterable[T],
             depth: int) -> Iterator[tuple[T, R]]:
    """Each of `items` with `stylize(item)`, in order, computed on `pool` with `depth` submitted
    (`frames_in_flight`), so a lane done first takes a waiting item: how `render` streams its
    frames, and how the timings and benchmarks measure an engine with lanes. An item's error is
    raised when its turn comes; the next items are read only as lanes need them."""
    in_flight: deque[tuple[T, Future]] = deque()
    for item in items:
        in_flight.append((item, pool.submit(stylize, item)))
        if len(in_flight) == depth:
            done, stylizing = in_flight.popleft()
            yield done, stylizing.result()
    while in_flight:
        done, stylizing = in_flight.popleft()
        yield done, stylizing.result()


def stream(pool: ThreadPoolExecutor | _Inline, stylize: Callable[[np.ndarray], Any], frames: Iterable[np.ndarray],
           depth: int) -> int:
    """How many of `frames` were stylized, `in_order`."""
    return sum(1 for _ in in_order(pool, stylize, frames, depth))


def lane_pool(lanes: int, name: str = "stylize") -> ThreadPoolExecutor | _Inline:
    """Where to run `lanes` frames at once (`submit`, `map`, a context manager): a pool of
    threads named `name`, or for one lane the caller's own thread, since torch's OpenMP team is
    throttled on a worker thread (nstcam.engines.process) and `render`'s and the timings' callers
    are the main one."""
    return ThreadPoolExecutor(lanes, thread_name_prefix=name) if lanes > 1 else _Inline()


class StylizeThread(threading.Thread):
    """Consumes `frames` and stylizes them; a `ChainThread` runs the rest of `path` on each
    result, offers it to `sink` and keeps it in `results`.

    With an engine that stylizes frames at once (`engine_lanes`), as many lanes (this thread and
    `stylize-2`...) each take the newest frame no lane has taken and stylize it; their results
    reach the chain in the order the frames were taken (a lane whose frame is ready before an
    earlier one leaves it and takes the next frame: under load a preempted lane must not idle the
    other), so the engine runs at its full rate and the chain still sees time go forward.

    `pause()` makes the thread wait after its current frame (`wait_paused` blocks until that frame
    is through the chain too: a snapshot refining on a CPU wants every core); `resume()` continues
    and resets the path. Exceptions from the engine or a processor go to `on_error` (as the
    exception object) and the loop carries on with the next frame.
    """

    def __init__(
        self,
        frames: LatestSlot[np.ndarray],
        path: FramePath,
        sink: ResultSink,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        super().__init__(name="stylize", daemon=True)
        self.frames = frames
        self.path = path
        self.sink = sink
        self.results: LatestSlot[FrameResult] = LatestSlot()
        self._stop_event = threading.Event()
        self._state = threading.Condition()
        self._pause_requested = False
        self._busy = 0  # lanes inside a frame's engine stage
        self._take = threading.Lock()  # one lane at a time takes a frame
        self._last = 0  # the newest frame's seq a lane took
        self._taken = 0  # frames taken; each one's turn to reach the chain is its number
        self._order = threading.Lock()
        self._ready: dict[int, tuple[Stamped[np.ndarray], tuple[str, np.ndarray] | None]] = {}  # by turn
        self._handed = 0  # turns done (handed to the chain, or failed)
        self._flushing = False  # a lane is handing ready results to the chain
        self._errors = ErrorOnce("stylizing", on_error)
        self._chain = ChainThread(path, self._deliver, self._errors.report)
        self._lanes: list[threading.Thread] = []

    # ------------------------------------------------------------------ commands (any thread)
    def start(self) -> None:
        lanes = engine_lanes(self.path.engine)
        self._lanes = [threading.Thread(target=self._lane, name=f"stylize-{i}", daemon=True) for i in range(2, lanes + 1)]
        super().start()
        self._chain.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Finish the current frames, then end every thread; True if they were joined within `timeout`."""
        deadline = time.monotonic() + timeout
        self._stop_event.set()
        with self._state:
            self._state.notify_all()
        joined = join_within(self, timeout, "stylize thread")
        joined = self._chain.close(max(0.0, deadline - time.monotonic())) and joined
        self.results.close()
        return joined

    def pause(self) -> None:
        with self._state:
            self._pause_requested = True

    def wait_paused(self, timeout: float) -> bool:
        """After `pause()`: wait until no frame is being stylized or finished; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._state:
            if not self._state.wait_for(lambda: self._busy == 0 or not self.is_alive(), timeout):
                return False
        return self._chain.wait_idle(max(0.0, deadline - time.monotonic()))

    def resume(self) -> None:
        with self._state:
            if self._pause_requested:
                self._pause_requested = False
                self.path.reset()  # the pause is a cut in the video
                self._state.notify_all()

    @property
    def paused(self) -> bool:
        return self._pause_requested

    @property
    def errors(self) -> int:
        """Frames that failed to stylize or process."""
        return self._errors.count

    # ------------------------------------------------------------------ the loop
    def run(self) -> None:
        for lane in self._lanes:
            lane.start()
        self._lane()
        for lane in self._lanes:  # each ends after its frame; `stop` joins this thread
            lane.join(JOIN_SECONDS)
        if not self._stop_event.is_set():  # the source ended: the chain finishes, then ends too
            self._chain.close(JOIN_SECONDS)
            self.results.close()

    def _lane(self) -> None:
        while not self._stop_event.is_set():
            with self._state:
                self._state.wait_for(lambda: not self._pause_requested or self._stop_event.is_set())
                if self._stop_event.is_set():
                    break
            taken = self._take_frame()
            if taken is not None:
                self._run_one(*taken)
            elif self.frames.closed:
                break

    def _take_frame(self) -> tuple[Stamped[np.ndarray], int] | None:
        """The newest frame after the last one any lane took, and its turn; None if none came in
        time or a pause came first."""
        with self._take:
            got = self.frames.get_stamped(after=self._last, timeout=POLL_SECONDS)
            if got is None:
                return None
            with self._state:
                if self._pause_requested:
                    return None
                self._busy += 1
            self._last = got.seq
            turn, self._taken = self._taken, self._taken + 1
            return got, turn

    def _run_one(self, got: Stamped[np.ndarray], turn: int) -> None:
        try:
            result: tuple[str, np.ndarray] | None = self.path.stylize(got.item)
        except Exception as exc:  # engine failure: report, go on with the next frame
            self._errors.report(exc)
            result = None
        with self._order:  # a lane does not wait for an earlier frame: it leaves its own and goes on
            self._ready[turn] = (got, result)
            flush = not self._flushing
            self._flushing = True
        if flush:
            self._flush()
        with self._state:
            self._busy -= 1  # handed over: `wait_paused` waits for the chain next
            self._state.notify_all()

    def _flush(self) -> None:
        """Hand the results whose turn has come to the chain, in the order their frames were taken
        (one lane at a time does this)."""
        while True:
            with self._order:
                item = self._ready.pop(self._handed, None)
                if item is None:
                    self._flushing = False
                    return
                self._handed += 1
            got, result = item
            if result is not None:
                self._chain.hand(got.item, result[1], got.seq, got.stamp, result[0])

    def _deliver(self, result: FrameResult) -> None:
        self._errors.succeeded()
        self.results.put(result)
        self.sink.offer(result)
