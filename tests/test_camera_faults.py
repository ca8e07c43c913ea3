"""Camera faults in the live path, with scripted sources: corrupt frames, a mid-run size change,
a camera that stops and comes back. Each is reported once and recovered from."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import nstcam.live.capture as capture_module
from nstcam.live.capture import BadFrame, CaptureThread, to_bgr8
from nstcam.engines.torch_engine import StyleEngine
from nstcam.live.session import LiveSession
from nstcam.live.sinks import CallbackSink

WAIT = 10.0


class ScriptedCamera:
    """A live source that plays `script`: each item is a frame (anything) or None (a failed grab);
    after the script it repeats its last good frame."""

    is_file = False
    live = True
    frame_count = None
    fps = 30.0
    size = (32, 24)
    description = "scripted camera"

    def __init__(self, script: list) -> None:
        self.script = list(script)
        self.last = np.zeros((24, 32, 3), np.uint8)
        self.tick = threading.Event()

    def read(self):
        self.tick.wait(0.005)  # a camera's own pace, not a wait for a condition
        if self.script:
            item = self.script.pop(0)
            if isinstance(item, np.ndarray) and item.dtype == np.uint8 and item.ndim == 3:
                self.last = item
            return item
        return self.last

    def release(self) -> None:
        pass


def frame(w: int, h: int, value: int = 90) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


@pytest.mark.parametrize("bad, why", [
    (np.zeros((24, 32, 5), np.uint8), "unexpected shape"),
    (np.zeros((24, 32, 3), np.int32), "unsupported pixel type"),
    (np.full((24, 32, 3), np.nan, np.float32), "NaN"),
    (np.zeros((2, 2, 3), np.uint8), "too small"),
    ("not a frame", "not an image array"),
])
def test_to_bgr8_refuses_what_it_cannot_convert(bad, why) -> None:
    with pytest.raises(BadFrame, match=why):
        to_bgr8(bad)


def test_to_bgr8_converts_grey_bgra_16bit_and_float() -> None:
    assert to_bgr8(np.full((24, 32), 7, np.uint8)).shape == (24, 32, 3)
    assert to_bgr8(np.full((24, 32, 4), 9, np.uint8))[0, 0].tolist() == [9, 9, 9]
    assert to_bgr8(np.full((24, 32, 3), 0xFF00, np.uint16))[0, 0, 0] == 0xFF
    assert to_bgr8(np.full((24, 32, 3), 0.5, np.float32))[0, 0, 0] == 128


def run_capture(monkeypatch, camera: ScriptedCamera, until) -> tuple[CaptureThread, list[str]]:
    monkeypatch.setattr(capture_module, "open_source", lambda spec: camera)
    messages: list[str] = []
    done = threading.Event()

    def on_status(message: str) -> None:
        messages.append(message)
        if until(messages):
            done.set()

    capture = CaptureThread("3", on_status=on_status, retry_seconds=0.01)
    capture.start()
    return capture, messages, done


def test_corrupt_frames_are_skipped_and_reported_once(monkeypatch, no_leftover_threads) -> None:
    bad = np.zeros((24, 32, 5), np.uint8)
    camera = ScriptedCamera([frame(32, 24), bad, bad, bad, frame(32, 24, 10)])
    capture, messages, done = run_capture(monkeypatch, camera, lambda m: any("corrupt" in x for x in m))
    try:
        assert done.wait(WAIT)
        seq = capture.slot.seq
        got = capture.slot.get(after=seq, timeout=WAIT)  # good frames keep coming
        assert got is not None and got[1].shape == (24, 32, 3)
    finally:
        capture.stop()
    corrupt = [m for m in messages if "corrupt" in m]
    assert corrupt == ["scripted camera delivered a corrupt frame (unexpected shape (24, 32, 5)); skipping such frames"]
    assert capture.bad_frames == 3


def test_a_mid_run_size_change_is_reported_and_restarts_the_processors(monkeypatch, style_models,
                                                                        no_leftover_threads) -> None:
    camera = ScriptedCamera([frame(32, 24)] * 5 + [frame(48, 36)])
    monkeypatch.setattr(capture_module, "open_source", lambda spec: camera)
    engine = StyleEngine(style_models, device="cpu", size=None, channels_last=False)
    messages: list[str] = []
    results = []
    big = threading.Event()

    def on_result(result) -> None:
        results.append(result)
        if result.raw_bgr.shape[1] == 48:
            big.set()

    session = LiveSession(engine, "3", on_status=messages.append)
    session.add_sink(CallbackSink(on_result))
    session.start()
    try:
        assert big.wait(WAIT)
    finally:
        session.stop()
    first_big = next(r for r in results if r.raw_bgr.shape[1] == 48)
    assert first_big.fresh and first_big.stylized_rgb.shape == (36, 48, 3)
    assert "scripted camera changed its frame size from 32x24 to 48x36" in messages


def test_a_camera_that_stops_then_comes_back_recovers(monkeypatch, no_leftover_threads) -> None:
    monkeypatch.setattr(capture_module, "MAX_READ_FAILURES", 2)
    camera = ScriptedCamera([frame(32, 24)] * 3 + [None] * 4)
    capture, messages, done = run_capture(
        monkeypatch, camera, lambda m: any("delivering frames again" in x for x in m))
    try:
        assert done.wait(WAIT)
        got = capture.slot.get(after=capture.slot.seq, timeout=WAIT)
        assert got is not None
    finally:
        capture.stop()
    assert any("stopped delivering frames; retrying" in m for m in messages)
