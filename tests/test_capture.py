"""Frame sources (parse/open, demo scene) and the capture thread."""
from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

import nstcam.live.capture as capture_module
from nstcam.live.capture import CaptureThread
from nstcam.live.demo import DemoSource
from nstcam.live.sources import SourceError, open_source, parse_source
from nstcam_fixtures import read_all_frames, write_timed_video

WAIT = 10.0  # generous ceiling for waits on shared 2-core CI machines


def collect(capture: CaptureThread, count: int, timeout: float = WAIT) -> list[np.ndarray]:
    """The next `count` frames the capture thread publishes (waiting on the slot, no sleeps)."""
    frames: list[np.ndarray] = []
    last = capture.slot.seq
    while len(frames) < count:
        got = capture.slot.get(after=last, timeout=timeout)
        assert got is not None, f"no frame within {timeout} s (state {capture.state})"
        last, frame = got
        frames.append(frame)
    return frames


# ----------------------------------------------------------------------------- sources
def test_parse_source_cases(video_file: Path) -> None:
    assert parse_source("0") == 0
    assert parse_source(" 2 ") == 2
    assert parse_source(1) == 1
    assert parse_source("demo") == "demo"
    assert parse_source("DEMO") == "demo"
    assert parse_source("rtsp://cam.local/stream") == "rtsp://cam.local/stream"
    assert parse_source(str(video_file)) == str(video_file)


def test_parse_source_errors_name_the_problem(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mp4"
    with pytest.raises(SourceError, match="nope.mp4.*does not exist"):
        parse_source(str(missing))
    with pytest.raises(SourceError, match="folder"):
        parse_source(str(tmp_path))
    with pytest.raises(SourceError, match="empty"):
        parse_source("  ")


def test_open_source_failures_give_advice(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"camera 99 could not be opened.*demo"):
        open_source("99")
    junk = tmp_path / "junk.avi"
    junk.write_text("not a video")
    with pytest.raises(SourceError, match="junk.avi could not be opened"):
        open_source(str(junk))
    song = write_timed_video(tmp_path / "song.m4a", [], sound_seconds=0.5, video_track=False)
    with pytest.raises(SourceError) as refused:  # it used to be "not a video format ... or it is damaged"
        open_source(str(song))
    assert str(refused.value) == f"{song} holds only sound, no pictures to show. Try a video file or --camera demo"


def test_open_source_file_reports_properties(video_file: Path) -> None:
    source = open_source(str(video_file))
    try:
        assert source.is_file and not source.live
        assert source.size == (96, 64)
        assert source.fps == pytest.approx(12.0)
        assert source.frame_count == 24
        frame = source.read()
        assert frame is not None and frame.shape == (64, 96, 3) and frame.dtype == np.uint8
    finally:
        source.release()


def test_demo_source_is_animated_deterministic_and_sized() -> None:
    source = open_source("demo")
    assert isinstance(source, DemoSource)
    assert source.size == (640, 480) and source.fps == 30 and not source.is_file
    first = source.read()
    assert first.shape == (480, 640, 3) and first.dtype == np.uint8
    for _ in range(14):
        later = source.read()
    assert np.abs(later.astype(int) - first.astype(int)).mean() > 1.0  # things moved
    small = DemoSource(width=160, height=120, fps=10)
    assert small.read().shape == (120, 160, 3)
    assert np.array_equal(small.frame_at(7), DemoSource(160, 120, 10).frame_at(7))


# ----------------------------------------------------------------------------- capture thread
def test_capture_delivers_frames_at_the_file_rate(video_file: Path, no_leftover_threads: None) -> None:
    capture = CaptureThread(str(video_file))
    capture.start()
    try:
        frames = collect(capture, 14)
        assert all(f.shape == (64, 96, 3) for f in frames)
        assert capture.state == "running"
        assert capture.source_fps == pytest.approx(12.0)
        assert capture.frame_size == (96, 64)
        assert capture.open_error is None
        assert 7.0 < capture.fps < 17.0, capture.fps  # paced at ~12 fps, not as fast as decoding
    finally:
        capture.stop()
    assert capture.state == "stopped" and not capture.is_alive()


def test_capture_mirror_is_switchable_live(video_file: Path, no_leftover_threads: None) -> None:
    originals = read_all_frames(video_file)
    flipped = [cv2.flip(f, 1) for f in originals]
    capture = CaptureThread(str(video_file), mirror=True, realtime=False)
    capture.start()
    try:
        frame = collect(capture, 1)[0]
        assert any(np.array_equal(frame, f) for f in flipped)
        assert not any(np.array_equal(frame, f) for f in originals)
        capture.mirror = False
        frames = collect(capture, 3)  # the first may have been flipped before the switch
        assert any(np.array_equal(frames[-1], f) for f in originals)
    finally:
        capture.stop()


def test_capture_restarts_a_video_that_ends(short_video_file: Path, no_leftover_threads: None) -> None:
    messages: list[str] = []
    restarted = threading.Event()

    def on_status(message: str) -> None:
        messages.append(message)
        if "ended; restarting" in message:
            restarted.set()

    capture = CaptureThread(str(short_video_file), on_status=on_status)
    capture.start()
    try:
        frames = collect(capture, 12)  # twice the clip's 6 frames: it must have looped
        assert restarted.wait(WAIT)
        assert len(frames) == 12
        assert capture.state in ("running", "opening")
    finally:
        capture.stop()
    assert any("short.avi ended; restarting" in m for m in messages)


def test_capture_reports_a_camera_that_cannot_be_opened(no_leftover_threads: None) -> None:
    statuses: list[str] = []
    reported = threading.Event()

    def on_status(message: str) -> None:
        statuses.append(message)
        reported.set()

    capture = CaptureThread("99", on_status=on_status, retry_seconds=0.05)
    capture.start()
    try:
        assert capture.ready.wait(WAIT)
        assert reported.wait(WAIT)
        assert capture.open_error is not None and "camera 99" in capture.open_error
        assert "retrying" in statuses[0]
        assert capture.state == "retrying" and capture.is_alive()
        assert capture.slot.latest() is None
    finally:
        capture.stop()
    assert capture.state == "stopped"


class FlakyCamera:
    """A fake live source delivering `frames` frames, then nothing (an unplugged camera)."""

    is_file = False
    live = True
    frame_count = None
    fps = 30.0
    size = (32, 24)
    description = "camera 7"

    def __init__(self, frames: int) -> None:
        self.left = frames

    def read(self) -> np.ndarray | None:
        if self.left <= 0:
            return None
        self.left -= 1
        return np.full((24, 32, 3), self.left, np.uint8)

    def release(self) -> None:
        pass


def test_capture_reopens_a_camera_that_stops_delivering(monkeypatch: pytest.MonkeyPatch,
                                                        no_leftover_threads: None) -> None:
    opens: list[int] = []

    def fake_open(spec: str) -> FlakyCamera:
        opens.append(1)
        return FlakyCamera(frames=3)

    monkeypatch.setattr(capture_module, "open_source", fake_open)
    monkeypatch.setattr(capture_module, "MAX_READ_FAILURES", 1)
    messages: list[str] = []
    recovered = threading.Event()

    def on_status(message: str) -> None:
        messages.append(message)
        if "delivering frames again" in message:
            recovered.set()

    capture = CaptureThread("7", on_status=on_status, retry_seconds=0.01)
    capture.start()
    try:
        assert recovered.wait(WAIT)
        collect(capture, 4)  # frames keep coming from the re-opened camera
    finally:
        capture.stop()
    assert any("camera 7 stopped delivering frames; retrying" in m for m in messages)
    assert len(opens) >= 2


def test_a_file_source_runs_at_the_rate_of_its_timestamps_not_the_stated_one(tmp_path: Path) -> None:
    """A Matroska file without a stated rate says 24 fps to OpenCV: the window played (and recorded) a
    30 fps clip 25 % slow."""
    from nstcam_fixtures import write_timed_video

    clip = write_timed_video(tmp_path / "clip.mkv", [i / 30 for i in range(40)])
    assert cv2.VideoCapture(str(clip)).get(cv2.CAP_PROP_FPS) == pytest.approx(24)
    source = open_source(str(clip))
    assert source.fps == 30.0
    source.release()
