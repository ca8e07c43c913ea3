"""Sinks: the fan-out (failures isolated, one close deadline), recorder pacing, the virtual camera."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from nstcam.live.pipeline import FrameResult
from nstcam.live.recorder import Recorder
from nstcam.live.sinks import MAX_HOLD_SECONDS, CallbackSink, RecorderSink, SinkFanout
from nstcam.live.virtualcam import VirtualCameraSink, VirtualCameraUnavailable, letterbox
from nstcam_fixtures import read_all_frames

WAIT = 10.0


def result(seq: int, cut: bool = False, value: int = 100, size=(48, 32), fresh: bool = False) -> FrameResult:
    w, h = size
    rgb = np.full((h, w, 3), value, np.uint8)
    return FrameResult(seq=seq, raw_bgr=rgb, stylized_rgb=rgb, style="s", latency_ms=1.0, engine_fps=1.0,
                       t_captured=float(seq), fresh=fresh or cut, cut=cut)


class Broken:
    name = "broken"

    def offer(self, result: FrameResult) -> None:
        raise OSError("device gone")

    def close(self, timeout: float) -> bool:
        return True


class Stuck:
    """A sink whose close never finishes (a hung driver)."""

    name = "stuck"

    def __init__(self) -> None:
        self.closed_with: float | None = None

    def offer(self, result: FrameResult) -> None:
        pass

    def close(self, timeout: float) -> bool:
        self.closed_with = timeout
        return False


def test_a_failing_sink_is_detached_and_reported_while_the_others_go_on() -> None:
    errors: list[Exception] = []
    got: list[int] = []
    fanout = SinkFanout(on_error=errors.append)
    broken = Broken()
    fanout.add(broken)
    fanout.add(CallbackSink(lambda r: got.append(r.seq)))
    for seq in (1, 2, 3):
        fanout.offer(result(seq))
    assert got == [1, 2, 3]
    assert len(errors) == 1 and isinstance(errors[0], OSError)
    assert broken not in fanout.sinks and len(fanout.sinks) == 1


def test_close_shares_one_deadline_and_names_what_did_not_finish() -> None:
    fanout = SinkFanout()
    stuck = Stuck()
    fanout.add(CallbackSink(lambda r: None, name="fine"))
    fanout.add(stuck)
    assert fanout.close(timeout=3.0) == ["stuck"]
    assert stuck.closed_with is not None and 0 <= stuck.closed_with <= 3.0
    assert fanout.sinks == []


def test_recorder_sink_holds_frames_for_the_captures_they_stand_for(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "live.mp4", fps=10.0)
    sink = RecorderSink(rec)
    for seq, cut, fresh in ((1, True, True), (2, False, False), (5, False, True), (6, True, True), (200, False, False)):
        sink.offer(result(seq, cut, fresh=fresh))  # seq 5: a style switch (fresh), no break in time
    assert sink.close(WAIT)
    # 1 + 1 + 3 (seq 2 -> 5, held across the style switch) + 1 (a cut, not a hold) + the cap
    cap = round(10.0 * MAX_HOLD_SECONDS)
    assert sink.frames_in == 5 and sink.frames_written == 1 + 1 + 3 + 1 + cap
    assert rec.frames_written == sink.frames_written
    assert len(read_all_frames(rec.path)) == sink.frames_written


def test_offline_recorder_sink_writes_each_result_once(tmp_path: Path) -> None:
    sink = RecorderSink(Recorder(tmp_path / "render.mp4", fps=10.0, realtime=False))
    for seq in (1, 3, 9):
        sink.offer(result(seq))
    assert sink.close(WAIT) and sink.frames_written == 3


# ------------------------------------------------------------------------------ virtual camera


class FakeBackend:
    """A pyvirtualcam backend that keeps the frames it is sent (registered as 'nstcam-test')."""

    instances: list[FakeBackend] = []

    def __init__(self, *, width: int, height: int, fps: float, fourcc: int, device: str | None, **kw) -> None:
        if device == "/dev/missing":
            raise RuntimeError(f"device {device} does not exist")
        self.width, self.height, self.fps = width, height, fps
        self.name = device or "fake0"
        self.frames: list[np.ndarray] = []
        self.sent = threading.Condition()
        self.closed = False
        FakeBackend.instances.append(self)

    def send(self, frame: np.ndarray) -> None:
        with self.sent:
            self.frames.append(frame.reshape(self.height, self.width, 3).copy())
            self.sent.notify_all()

    def close(self) -> None:
        self.closed = True

    def device(self) -> str:
        return self.name

    def native_fourcc(self):
        return None

    def wait_frames(self, n: int) -> bool:
        with self.sent:
            return self.sent.wait_for(lambda: len(self.frames) >= n, WAIT)


@pytest.fixture
def fake_backend():
    pyvirtualcam = pytest.importorskip("pyvirtualcam")
    pyvirtualcam.register_backend("nstcam-test", FakeBackend)
    FakeBackend.instances.clear()
    yield FakeBackend
    pyvirtualcam.camera.BACKENDS.pop("nstcam-test")  # later tests must see the real devices only


def test_letterbox_keeps_the_aspect_on_black() -> None:
    out = letterbox(np.full((240, 320, 3), 200, np.uint8), (1280, 720))
    assert out.shape == (720, 1280, 3)
    assert out[:, 160:1120].min() == 200  # 320x240 -> 960x720, centred
    assert out[:, :160].max() == 0 and out[:, 1120:].max() == 0


def test_virtual_camera_receives_each_new_frame_scaled(fake_backend, no_leftover_threads) -> None:
    sink = VirtualCameraSink(size=(320, 180), fps=100.0, backend="nstcam-test")
    backend = fake_backend.instances[-1]
    assert sink.device == "fake0" and (backend.width, backend.height) == (320, 180)
    sink.offer(result(1, value=50, size=(64, 48)))
    assert backend.wait_frames(1)
    sink.offer(result(2, value=150, size=(64, 48)))
    assert backend.wait_frames(2)
    assert sink.close(WAIT) and backend.closed
    first, second = backend.frames[:2]
    assert first.shape == (180, 320, 3)
    # 64x48 fits 240x180: bars left and right, the picture's own colour in the middle
    assert first[:, 40:280].min() == 50 and first[:, :40].max() == 0
    assert second[90, 160].tolist() == [150, 150, 150]
    assert len(backend.frames) == sink.frames_sent == 2  # no frame is sent twice


def test_virtual_camera_that_cannot_open_says_what_to_install(fake_backend) -> None:
    with pytest.raises(VirtualCameraUnavailable, match="v4l2loopback|OBS") as info:
        VirtualCameraSink(device="/dev/missing", backend="nstcam-test")
    assert "/dev/missing" in str(info.value)
