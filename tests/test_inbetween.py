"""In-between frames: the keyframe moves with the camera, staleness and cuts wait for a fresh frame,
the look applies, every camera frame is shown with a slow engine, and the flag turns it off."""
from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from nstcam.live.controls import Look, OutputControls, input_at
from nstcam.live.flow import RawFlow
from nstcam.live.frames import LatestSlot
from nstcam.live.inbetween import Inbetweener, Presenter
from nstcam.live.pipeline import FramePath, FrameResult
from nstcam.live.session import LiveSession, SessionOptions
from nstcam.live.sinks import CallbackSink
from nstcam.measure.stability import pan_clip, still_clip, synthetic_scene

SIZE = (320, 240)
WAIT = 60.0  # seconds: two CPU cores shared with other jobs


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    return synthetic_scene(480, 360, seed=3)


def painted(raw_bgr: np.ndarray) -> np.ndarray:
    """A stand-in style: the negative, so a picture that did not move shows as a mismatch."""
    return 255 - cv2.cvtColor(raw_bgr, cv2.COLOR_BGR2RGB)


def keyframe(raw_bgr: np.ndarray, seq: int, stamp: float, latency_ms: float = 500.0) -> FrameResult:
    return FrameResult(seq=seq, raw_bgr=raw_bgr, stylized_rgb=painted(raw_bgr), style="negative",
                       latency_ms=latency_ms, engine_fps=2.0, t_captured=stamp)


def await_true(condition, timeout: float = WAIT) -> None:
    """Poll `condition` (a counter another thread raises) until it holds."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        pause.wait(0.005)


def error(a: np.ndarray, b: np.ndarray, margin: int = 16) -> float:
    inner = (slice(margin, -margin), slice(margin, -margin))
    return float(cv2.absdiff(a, b)[inner].mean())


# --------------------------------------------------------------------------------- Inbetweener
def test_the_keyframe_moves_with_a_pan(scene: np.ndarray) -> None:
    """Frame 3 of a 3 px/frame pan made from frame 0's stylization: within the texture's noise of
    stylizing frame 3 itself, and far closer than the unmoved keyframe (or one moved the wrong way,
    which lands 18 px off)."""
    clip = pan_clip(scene, 3, 4, SIZE, noise=2.0, rng=np.random.default_rng(0))
    maker = Inbetweener()
    maker.keep(keyframe(clip.frames[0], 1, 0.0))
    made = maker.make(clip.frames[3], 4, 0.1)
    assert made is not None and maker.made == 1
    moved, key = made
    assert key.seq == 1 and moved.shape == (240, 320, 3)
    truth = painted(clip.frames[3])
    reversed_way = cv2.warpAffine(painted(clip.frames[0]), np.float32([[1, 0, 9], [0, 1, 0]]), SIZE,
                                  borderMode=cv2.BORDER_REPLICATE)
    assert error(moved, truth) < 0.35 * error(painted(clip.frames[0]), truth)
    assert error(moved, truth) < 0.35 * error(reversed_way, truth)


def test_a_stale_keyframe_makes_no_inbetween(scene: np.ndarray) -> None:
    clip = still_clip(scene, 2, SIZE, noise=2.0, rng=np.random.default_rng(0))
    maker = Inbetweener(max_age=0.5)
    maker.keep(keyframe(clip.frames[0], 1, 10.0))
    assert maker.make(clip.frames[1], 2, 10.4) is not None
    assert maker.make(clip.frames[1], 3, 10.6) is None and maker.stale == 1
    assert maker.make(clip.frames[1], 1, 10.1) is None  # not newer than the keyframe


def test_a_cut_makes_no_inbetween(scene: np.ndarray) -> None:
    before = still_clip(scene, 1, SIZE, noise=2.0, rng=np.random.default_rng(0)).frames[0]
    after = still_clip(synthetic_scene(480, 360, seed=11), 1, SIZE, noise=2.0, rng=np.random.default_rng(1)).frames[0]
    maker = Inbetweener()
    maker.keep(keyframe(before, 1, 0.0))
    assert maker.make(after, 2, 0.03) is None and maker.cuts == 1 and maker.made == 0


def test_a_keyframe_already_moved_onto_is_not_measured_again(scene: np.ndarray) -> None:
    """A fresh stylization usually arrives after its camera frame's in-between frame was made:
    as the next keyframe, its grey for the flow is the one already made, and what is moved onto
    the next frame is the same as from a maker that never saw the frame."""
    clip = pan_clip(scene, 2, 3, SIZE, noise=2.0, rng=np.random.default_rng(0))
    greyed: list[int] = []

    class CountingFlow(RawFlow):
        def gray(self, raw_bgr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
            greyed.append(id(raw_bgr))
            return super().gray(raw_bgr, size)

    maker = Inbetweener(flow=CountingFlow())
    maker.keep(keyframe(clip.frames[0], 1, 0.0))
    assert maker.make(clip.frames[1], 2, 0.03) is not None
    maker.keep(keyframe(clip.frames[1], 2, 0.03))
    moved, _ = maker.make(clip.frames[2], 3, 0.07)
    assert greyed == [id(clip.frames[0]), id(clip.frames[1]), id(clip.frames[2])]

    fresh = Inbetweener()
    fresh.keep(keyframe(clip.frames[1], 2, 0.03))
    assert np.array_equal(moved, fresh.make(clip.frames[2], 3, 0.07)[0])


# --------------------------------------------------------------------------------- Presenter
class Collector:
    """A sink that records what it is offered and lets a test await a count."""

    name = "collector"

    def __init__(self) -> None:
        self.results: list[FrameResult] = []
        self._cond = threading.Condition()

    def offer(self, result: FrameResult) -> None:
        with self._cond:
            self.results.append(result)
            self._cond.notify_all()

    def wait_for(self, count: int) -> list[FrameResult]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.results) >= count, WAIT), self.results
            return list(self.results)

    def close(self, timeout: float) -> bool:
        return True


class NoEngine:
    """The presenter never stylizes: its frame path only finishes frames."""

    style = "negative"

    def stylize(self, frame_bgr: np.ndarray, style: str | None = None) -> np.ndarray:
        raise AssertionError("in-between frames must not call the engine")


@pytest.fixture
def presenter():
    """presenter(look) -> (Presenter started on its own slot, the slot, the collecting sink)."""
    started: list[Presenter] = []

    def make(look: Look | None = None) -> tuple[Presenter, LatestSlot, Collector]:
        slot: LatestSlot[np.ndarray] = LatestSlot()
        sink = Collector()
        path = FramePath(NoEngine(), [OutputControls(look=look)] if look else [])
        p = Presenter(slot, path, sink)
        p.start()
        started.append(p)
        return p, slot, sink

    yield make
    for p in started:
        p.frames.close()
        assert p.stop(5.0)


def test_stale_keyframe_and_cut_wait_for_the_fresh_frame(scene: np.ndarray, presenter) -> None:
    clip = pan_clip(scene, 2, 4, SIZE, noise=2.0, rng=np.random.default_rng(0))
    other = still_clip(synthetic_scene(480, 360, seed=11), 1, SIZE, noise=2.0, rng=np.random.default_rng(1)).frames[0]
    p, slot, sink = presenter()
    slot.put(clip.frames[0], stamp=100.0)
    p.offer(keyframe(clip.frames[0], 1, 100.0))  # fresh: shown as it is
    slot.put(clip.frames[1], stamp=100.1)  # the engine is busy: an in-between
    shown = sink.wait_for(2)
    assert [(r.seq, r.inbetween) for r in shown] == [(1, False), (2, True)]
    assert shown[1].style == "negative" and shown[1].t_captured == 100.1
    slot.put(clip.frames[2], stamp=105.0)  # the keyframe is 5 s old: nothing made ...
    await_true(lambda: p.inbetweener.stale == 1)
    slot.put(other, stamp=100.2)  # ... nor across a cut
    await_true(lambda: p.inbetweener.cuts == 1)
    assert len(sink.results) == 2
    fresh = keyframe(other, 4, 100.2)
    p.offer(fresh)  # the fresh frame is shown, as it is
    assert sink.wait_for(3)[2] is fresh
    p.offer(keyframe(clip.frames[1], 2, 100.1))  # a fresh result for a frame already shown is only kept
    assert len(sink.results) == 3 and p.inbetweener.key.seq == 2


def test_the_look_applies_to_inbetween_frames(scene: np.ndarray, presenter) -> None:
    clip = pan_clip(scene, 1, 2, SIZE, noise=2.0, rng=np.random.default_rng(0))
    p, slot, sink = presenter(Look(strength=0.0))
    slot.put(clip.frames[0], stamp=1.0)
    p.offer(keyframe(clip.frames[0], 1, 1.0))
    slot.put(clip.frames[1], stamp=1.03)
    made = sink.wait_for(2)[1]
    assert made.inbetween and made.base_rgb is not None
    np.testing.assert_array_equal(made.stylized_rgb, input_at(clip.frames[1], SIZE))  # strength 0: the camera


# --------------------------------------------------------------------------------- live session
class SlowEngine:
    """A fake engine that takes `ms` per frame (its speed is the point, not a wait in the test),
    at a small size, so that in-between frames cost little even on a machine shared with others."""

    style = "negative"

    def __init__(self, ms: float) -> None:
        self.ms = ms
        self.frames = 0

    def stylize(self, frame_bgr: np.ndarray, style: str | None = None) -> np.ndarray:
        time.sleep(self.ms / 1e3)
        self.frames += 1
        return painted(cv2.resize(frame_bgr, (160, 120), interpolation=cv2.INTER_AREA))


def shown_per_captured(inbetween: bool, frames: int) -> tuple[float, int]:
    """Frames passed to the sinks per camera frame while `frames` camera frames are captured from
    the demo scene (30 fps), with an engine at 8 fps; and how many were in-between frames."""
    engine = SlowEngine(125.0)
    session = LiveSession(engine, "demo", options=SessionOptions(inbetween=inbetween))
    seen: list[FrameResult] = []
    done = threading.Event()
    start: list[int] = []

    def count(result: FrameResult) -> None:
        if not start:
            start.append(session.frames_captured)  # from the first frame shown
        seen.append(result)
        if session.frames_captured - start[0] >= frames:
            done.set()

    session.add_sink(CallbackSink(count))
    session.start()
    try:
        assert done.wait(WAIT)
        captured = session.frames_captured - start[0]
        shown = list(seen)
    finally:
        session.stop()
    seqs = [r.seq for r in shown]
    assert seqs == sorted(set(seqs))  # in capture order, each frame once
    return len(shown) / captured, sum(r.inbetween for r in shown)


def test_every_camera_frame_is_shown_with_a_slow_engine(monkeypatch) -> None:
    # At its usual lower priority, the in-between thread yields to every other job on a shared
    # test machine; the priority is policy, this test is about the frames.
    monkeypatch.setattr("nstcam.live.inbetween.NICENESS", 0)
    rate, made = shown_per_captured(True, 90)
    assert rate >= 0.8 and made > 0  # a machine shared with other jobs may starve a frame now and then
    rate_off, made_off = shown_per_captured(False, 30)
    assert rate_off < 0.5 and made_off == 0  # only the engine's 8 of the camera's 30


# --------------------------------------------------------------------------------- the flag
def test_no_inbetween_flag_reaches_the_window_options() -> None:
    from types import SimpleNamespace

    from nstcam.cli import render_parser, window_parser
    from nstcam.ui.app import window_options

    assert window_parser().parse_args([]).inbetween is None  # not given: on
    args = window_parser().parse_args(["--no-inbetween"])
    assert args.inbetween is False
    launch = SimpleNamespace(args=args, camera="demo", camera_explicit=True, record_path=None, pictures_dir=None,
                             device=SimpleNamespace(type="cpu"))
    assert window_options(launch).inbetween is False
    args.inbetween = None
    assert window_options(launch).inbetween is True
    with pytest.raises(SystemExit):  # render stylizes every frame: no such flag
        render_parser().parse_args(["in.mp4", "-o", "out.mp4", "--no-inbetween"])
