"""StylizeThread and FramePath: newest-frame-only processing, bounded latency, processors and their
resets, pause/resume, errors, clean stop."""
from __future__ import annotations

import threading
from collections.abc import Callable
import time
from pathlib import Path

import numpy as np
import pytest

from nstcam.live.capture import CaptureThread
from nstcam.engines.torch_engine import StyleEngine
from nstcam.live.frames import LatestSlot
from nstcam.live.pipeline import FramePath, FrameResult, StylizeThread
from nstcam.live.sinks import CallbackSink
from nstcam_fixtures import video_frame


WAIT = 10.0


class SlowEngine:
    """A real engine plus 30 ms of simulated network time per frame; records call durations."""

    def __init__(self, engine: StyleEngine, extra_s: float = 0.03, fail_every: int = 0) -> None:
        self.engine = engine
        self.extra_s = extra_s
        self.fail_every = fail_every
        self.calls = 0
        self.durations: list[float] = []

    style = property(lambda self: self.engine.style)
    stats = property(lambda self: self.engine.stats)

    def stylize(self, frame: np.ndarray, style: str | None = None) -> np.ndarray:
        t0 = time.monotonic()
        self.calls += 1
        if self.fail_every and self.calls % self.fail_every == 0:
            raise RuntimeError("simulated failure")
        out = self.engine.stylize(frame, style)
        time.sleep(self.extra_s)  # stands in for a heavier network, not a wait for an event
        self.durations.append(time.monotonic() - t0)
        return out


@pytest.fixture
def engine(style_models) -> StyleEngine:
    return StyleEngine(style_models, device="cpu", size=32, channels_last=False)


class Producer(threading.Thread):
    """Puts a new frame every millisecond: much faster than the engine stylizes."""

    def __init__(self, slot: LatestSlot[np.ndarray]) -> None:
        super().__init__(daemon=True)
        self.slot = slot
        self.halt = threading.Event()
        self.put = 0

    def run(self) -> None:
        while not self.halt.is_set():
            self.slot.put(video_frame(self.put % 24))
            self.put += 1
            self.halt.wait(0.001)


def stylize_thread(slot, engine, on_result, on_error=None, processors=()) -> StylizeThread:
    return StylizeThread(slot, FramePath(engine, processors), CallbackSink(on_result), on_error)


def run_until(worker: StylizeThread, slot: LatestSlot[np.ndarray], enough: threading.Event) -> bool:
    """Feed `worker` frames from a `Producer` until `enough` is set; then stop both. True if
    `enough` was set within WAIT and the worker stopped in time."""
    producer = Producer(slot)
    producer.start()
    worker.start()
    try:
        return enough.wait(WAIT)
    finally:
        producer.halt.set()
        producer.join()
        stopped = worker.stop()
        slot.close()
        assert stopped


def collect_results(count: int):
    results: list[FrameResult] = []
    enough = threading.Event()

    def on_result(result: FrameResult) -> None:
        results.append(result)
        if len(results) >= count:
            enough.set()

    return results, enough, on_result


def test_fast_frames_are_dropped_and_latency_stays_bounded(engine: StyleEngine, no_leftover_threads: None) -> None:
    slow = SlowEngine(engine)
    slot: LatestSlot[np.ndarray] = LatestSlot()
    results, enough, on_result = collect_results(12)
    worker = stylize_thread(slot, slow, on_result)
    assert run_until(worker, slot, enough)
    assert not worker.is_alive()
    assert slot.dropped > len(results)  # most frames were skipped, not queued
    seqs = [r.seq for r in results]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert seqs[-1] - seqs[0] > len(seqs)  # results jumped ahead to the newest frames
    # Newest-frame-only: a result is at most ~one stylize behind its capture, however long it runs.
    bound_ms = 2 * max(slow.durations) * 1e3 + 100
    assert max(r.latency_ms for r in results) < bound_ms
    assert results[-1].latency_ms < bound_ms  # no growth over time
    last = results[-1]
    assert last.stylized_rgb.shape == (32, 48, 3) and last.raw_bgr.shape == (64, 96, 3)
    assert last.style == "alpha" and last.engine_fps > 0
    assert worker.results.closed  # pollers are woken on stop


def test_results_slot_holds_the_latest_result(engine: StyleEngine, no_leftover_threads: None) -> None:
    slot: LatestSlot[np.ndarray] = LatestSlot()
    worker = stylize_thread(slot, engine, lambda r: None)
    worker.start()
    try:
        seq = slot.put(video_frame(0))
        got = worker.results.get(timeout=WAIT)
        assert got is not None and got[1].seq == seq
        engine.set_style("beta")
        seq = slot.put(video_frame(1))
        got = worker.results.get(after=got[0], timeout=WAIT)
        assert got is not None and got[1].seq == seq and got[1].style == "beta"
    finally:
        worker.stop()


class FailingFor(SlowEngine):
    """Fails calls number `fail_calls` (1-based), succeeds otherwise."""

    def __init__(self, engine: StyleEngine, fail_calls: set[int]) -> None:
        super().__init__(engine, extra_s=0.0)
        self.fail_calls = fail_calls

    def stylize(self, frame: np.ndarray, style: str | None = None) -> np.ndarray:
        if self.calls + 1 in self.fail_calls:
            self.calls += 1
            raise MemoryError("could not allocate 40 GB")
        return super().stylize(frame, style)


def test_a_repeated_error_is_one_message_until_a_frame_succeeds(engine: StyleEngine,
                                                                no_leftover_threads: None) -> None:
    failing = FailingFor(engine, fail_calls={1, 2, 3, 4, 5, 7})
    slot: LatestSlot[np.ndarray] = LatestSlot()
    errors: list[Exception] = []
    results, enough, on_result = collect_results(3)
    worker = stylize_thread(slot, failing, on_result, on_error=errors.append)
    worker.start()
    try:
        last = 0
        while not enough.is_set():
            slot.put(video_frame(last % 24))
            last += 1
            assert last < 1000
            worker.results.get(after=worker.results.seq, timeout=0.05)  # pace to the worker
    finally:
        worker.stop()
    assert worker.errors == 6
    # calls 1-5 fail alike: one message; 6 succeeds; 7 fails again: reported again
    assert [str(e) for e in errors] == ["could not allocate 40 GB"] * 2
    assert all(isinstance(e, MemoryError) for e in errors)


def test_stop_without_frames_and_on_closed_input(engine: StyleEngine, no_leftover_threads: None) -> None:
    slot: LatestSlot[np.ndarray] = LatestSlot()
    worker = stylize_thread(slot, engine, lambda r: None)
    worker.start()
    worker.stop()
    assert not worker.is_alive()
    second = stylize_thread(slot, engine, lambda r: None)
    second.start()
    slot.close()  # the capture side went away: the worker ends by itself
    second.join(WAIT)
    assert not second.is_alive()
    stylize_thread(LatestSlot(), engine, lambda r: None).stop()  # never started: fine


def test_capture_to_stylize_end_to_end(video_file: Path, engine: StyleEngine, no_leftover_threads: None) -> None:
    capture = CaptureThread(str(video_file))
    results, enough, on_result = collect_results(5)
    worker = stylize_thread(capture.slot, engine, on_result)
    capture.start()
    worker.start()
    try:
        assert enough.wait(WAIT)
    finally:
        worker.stop()
        capture.stop()
    assert all(r.stylized_rgb.shape == (32, 48, 3) for r in results)
    assert all(0 <= r.latency_ms < 1000 for r in results)


class Recording:
    """A frame processor that logs what it sees and adds `bump` to every pixel."""

    def __init__(self, name: str, log: list, bump: int = 1) -> None:
        self.name, self.log, self.bump = name, log, bump

    def process(self, raw_bgr: np.ndarray, stylized_rgb: np.ndarray) -> np.ndarray:
        self.log.append((self.name, "process"))
        return stylized_rgb + np.uint8(self.bump)

    def reset(self) -> None:
        self.log.append((self.name, "reset"))


def test_frame_path_runs_processors_in_order_after_the_engine(engine: StyleEngine) -> None:
    calls: list = []
    path = FramePath(engine, [Recording("a", calls, 1), Recording("b", calls, 2)])
    frame = video_frame(0)
    plain = engine.stylize(frame)
    result = path.run(frame, seq=1, t_captured=10.0)
    assert np.array_equal(result.stylized_rgb, plain + 3)
    assert result.fresh and calls == [("a", "reset"), ("b", "reset"), ("a", "process"), ("b", "process")]


def test_frame_path_resets_on_style_switch_gap_new_capture_and_request(engine: StyleEngine) -> None:
    calls: list = []
    path = FramePath(engine, [Recording("p", calls)])
    frame = video_frame(0)

    def resets_after(**kwargs) -> tuple[bool, bool]:
        """(processors reset, break in time) for one frame."""
        calls.clear()
        result = path.run(frame, **kwargs)
        assert result.fresh == (("p", "reset") in calls)
        assert result.fresh or not result.cut
        return result.fresh, result.cut

    assert resets_after(seq=1, t_captured=1.0) == (True, True)  # the first frame
    assert resets_after(seq=3, t_captured=1.07) == (False, False)  # skipped frames are motion, not a cut
    engine.set_style("beta")
    assert resets_after(seq=4, t_captured=1.1) == (True, False)  # style switch: same time line
    assert resets_after(seq=5, t_captured=1.13) == (False, False)
    assert resets_after(seq=6, t_captured=2.0) == (True, True)  # 0.87 s with no frame captured: a stall
    assert resets_after(seq=30, t_captured=2.8) == (False, False)  # a slow stylize: 24 frames came meanwhile
    assert resets_after(seq=1, t_captured=2.83) == (True, True)  # sequence restarted: a new capture
    path.reset()
    assert resets_after(seq=2, t_captured=2.06) == (True, True)  # asked for (source switch, resume)


def test_pause_waits_for_the_frame_in_progress_and_resume_resets(engine: StyleEngine,
                                                                 no_leftover_threads: None) -> None:
    slow = SlowEngine(engine, extra_s=0.05)
    slot: LatestSlot[np.ndarray] = LatestSlot()
    calls: list = []
    results, enough, on_result = collect_results(2)
    worker = stylize_thread(slot, slow, on_result, processors=[Recording("p", calls)])
    producer = Producer(slot)
    producer.start()
    worker.start()
    try:
        assert enough.wait(WAIT)
        worker.pause()
        assert worker.wait_paused(WAIT) and worker.paused
        done = slow.calls
        frozen = len(results)
        assert not worker.results.get(after=worker.results.seq, timeout=0.3)  # nothing while paused
        assert slow.calls == done and len(results) == frozen
        calls.clear()
        worker.resume()
        got = worker.results.get(after=worker.results.seq, timeout=WAIT)
        assert got is not None and got[1].fresh and calls[0] == ("p", "reset")
    finally:
        producer.halt.set()
        producer.join()
        worker.stop()


class Handshake:
    """A processor that finishes its n-th frame only once the engine has started frame n + 1."""

    def __init__(self, engine_calls: threading.Condition, calls: Callable[[], int]) -> None:
        self.engine_calls = engine_calls
        self.calls = calls
        self.seen = 0
        self.overlapped: list[bool] = []
        self.done = False  # the test has its answer: stop waiting

    def process(self, raw_bgr: np.ndarray, stylized_rgb: np.ndarray) -> np.ndarray:
        self.seen += 1
        if not self.done:
            with self.engine_calls:
                self.overlapped.append(self.engine_calls.wait_for(lambda: self.done or self.calls() > self.seen, WAIT))
        return stylized_rgb

    def reset(self) -> None:
        pass


def test_the_engine_stylizes_the_next_frame_while_the_chain_finishes_this_one(
        engine: StyleEngine, no_leftover_threads: None) -> None:
    """In line, the chain's milliseconds (stabilizer, look) added to every frame's engine time."""
    entered = threading.Condition()

    class Signalling(SlowEngine):
        def stylize(self, frame: np.ndarray, style: str | None = None) -> np.ndarray:
            with entered:
                self.calls += 1
                entered.notify_all()
            return self.engine.stylize(frame, style)

    slot: LatestSlot[np.ndarray] = LatestSlot()
    signalling = Signalling(engine, extra_s=0.0)
    chain = Handshake(entered, lambda: signalling.calls)
    results, enough, on_result = collect_results(3)
    worker = stylize_thread(slot, signalling, on_result, processors=[chain])
    producer = Producer(slot)
    producer.start()
    worker.start()
    try:
        assert enough.wait(WAIT)
        assert chain.overlapped[:3] == [True] * 3
        assert [r.seq for r in results] == sorted(r.seq for r in results)  # still in capture order
    finally:
        chain.done = True
        with entered:
            entered.notify_all()
        producer.halt.set()
        producer.join()
        assert worker.stop()


class TwoAtOnce(SlowEngine):
    """An engine that stylizes two frames at once: its first two calls meet at a barrier (which
    breaks unless they run together), and the first then finishes after the second."""

    lanes = 2

    def __init__(self, engine: StyleEngine) -> None:
        super().__init__(engine, extra_s=0.0)
        self.lanes_used = 0
        self._meet = threading.Barrier(2, timeout=WAIT)
        self._second_done = threading.Event()
        self._count = threading.Lock()

    def use_lanes(self, lanes: int) -> None:
        self.lanes_used = lanes

    def stylize(self, frame: np.ndarray, style: str | None = None) -> np.ndarray:
        with self._count:
            self.calls += 1
            call = self.calls
        out = self.engine.stylize(frame, style)
        if call <= 2:
            self._meet.wait()
            if call == 1:
                self._second_done.wait(WAIT)
                time.sleep(0.05)  # stands in for a slower frame: the second call's result is ready first
            else:
                self._second_done.set()
        return out


def test_an_engine_with_lanes_gets_frames_at_once_and_results_stay_in_order(
        engine: StyleEngine, no_leftover_threads: None) -> None:
    slot: LatestSlot[np.ndarray] = LatestSlot()
    lanes = TwoAtOnce(engine)
    results, enough, on_result = collect_results(4)
    errors: list[Exception] = []
    worker = stylize_thread(slot, lanes, on_result, on_error=errors.append)
    assert run_until(worker, slot, enough)
    assert lanes.lanes_used == 2 and not errors
    seqs = [r.seq for r in results]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
