"""Offline rendering of a video file: same frame count and rate, stylized size."""
from __future__ import annotations

import threading
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from nstcam.engines.torch_engine import StyleEngine
from nstcam.live.render import render_video
from nstcam.live.sources import SourceError
from nstcam_fixtures import read_all_frames, write_timed_video, write_video


@pytest.fixture
def engine(style_models) -> StyleEngine:
    return StyleEngine(style_models, device="cpu", size=48, channels_last=False)


def test_render_keeps_frame_count_and_rate(video_file: Path, engine: StyleEngine, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    out = tmp_path / "styled.mp4"
    result = render_video(video_file, out, engine, progress=lambda done, total: calls.append((done, total)))
    assert (result.frames, result.fps, result.size) == (24, 12.0, (72, 48))
    assert result.path == out and not result.cancelled
    assert calls[0] == (0, 24) and calls[-1] == (24, 24) and len(calls) == 25  # the total before frame 1
    cap = cv2.VideoCapture(str(out))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(12.0)
    cap.release()
    frames = read_all_frames(out)
    assert len(frames) == 24 and frames[0].shape == (48, 72, 3)
    # Stylized, not copied: compare the first frame with the engine's own output (codec loss aside).
    expected = engine.stylize(read_all_frames(video_file)[0])
    assert np.abs(frames[0][..., ::-1].astype(int) - expected.astype(int)).mean() < 12


def test_render_uses_the_requested_style_and_never_overwrites(video_file: Path, engine: StyleEngine,
                                                             tmp_path: Path) -> None:
    out = tmp_path / "taken.mp4"
    out.write_bytes(b"keep me")
    result = render_video(video_file, out, engine, style="beta")
    assert result.path == tmp_path / "taken-1.mp4" and out.read_bytes() == b"keep me"
    assert len(read_all_frames(result.path)) == 24


def test_render_can_be_cancelled(video_file: Path, engine: StyleEngine, tmp_path: Path) -> None:
    cancel = threading.Event()

    def progress(done: int, total: int) -> None:
        if done == 5:
            cancel.set()

    result = render_video(video_file, tmp_path / "part.mp4", engine, progress=progress, cancel=cancel)
    assert result.cancelled and result.frames == 5
    assert len(read_all_frames(result.path)) == 5


class FailsAt:
    """A processor that fails on its `n`-th frame."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.seen = 0

    def process(self, raw_bgr: np.ndarray, stylized_rgb: np.ndarray) -> np.ndarray:
        self.seen += 1
        if self.seen == self.n:
            raise RuntimeError("processor broke")
        return stylized_rgb

    def reset(self) -> None:
        pass


def test_a_processor_failing_on_its_thread_fails_the_render_and_leaves_no_file(video_file: Path,
                                                                               engine: StyleEngine,
                                                                               tmp_path: Path) -> None:
    """The processors run beside the engine (nstcam.live.pipeline.ChainThread); their error still
    ends the render, and the unfinished output is removed."""
    out = tmp_path / "broken.mp4"
    with pytest.raises(RuntimeError, match="processor broke"):
        render_video(video_file, out, engine, processors=[FailsAt(5)])
    assert not out.exists() and not list(tmp_path.iterdir())


def test_render_errors_name_the_input(engine: StyleEngine, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="missing.avi.*does not exist"):
        render_video(tmp_path / "missing.avi", tmp_path / "o.mp4", engine)
    junk = tmp_path / "junk.mp4"
    junk.write_text("no video here")
    with pytest.raises(SourceError, match="junk.mp4"):
        render_video(junk, tmp_path / "o.mp4", engine)
    assert not (tmp_path / "o.mp4").exists()


def test_a_video_smaller_than_the_optical_flow_allows_renders_with_the_stabilizer(tmp_path: Path,
                                                                                 style_models) -> None:
    """A 16x12 clip used to stop at frame 2 with a cv2.error from the stabilizer and leave a 1-frame file."""
    from nstcam.live.stabilize import FlowStabilizer

    clip = write_video(tmp_path / "tiny.avi", frames=10, size=(16, 12))
    engine = StyleEngine(style_models, device="cpu", size=None, channels_last=False)
    result = render_video(clip, tmp_path / "tiny.mp4", engine, processors=[FlowStabilizer()])
    assert (result.frames, result.size) == (10, (16, 12))
    assert len(read_all_frames(result.path)) == 10


def test_audio_only_and_frameless_inputs_say_what_they_hold(engine: StyleEngine, tmp_path: Path) -> None:
    """They used to be 'could not be opened … Try another file or --camera demo', which render does not have."""
    sound = write_timed_video(tmp_path / "song.m4a", [], sound_seconds=0.5, video_track=False)
    with pytest.raises(SourceError) as info:
        render_video(sound, tmp_path / "o.mp4", engine)
    assert str(info.value) == f"{sound} holds only sound; nstcam render needs a video file"
    frameless = write_timed_video(tmp_path / "frameless.mkv", [], sound_seconds=0.5)
    with pytest.raises(SourceError) as info:
        render_video(frameless, tmp_path / "o.mp4", engine)
    assert str(info.value) == f"{frameless}: its video stream holds no frames; nothing to render"
    junk = tmp_path / "junk.mkv"
    junk.write_bytes(b"\x1a\x45\xdf\xa3" + bytes(200))  # a Matroska signature, then nothing
    with pytest.raises(SourceError) as info:
        render_video(junk, tmp_path / "o.mp4", engine)
    assert "demo" not in str(info.value) and str(junk) in str(info.value)
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_the_inputs_sound_is_carried_into_the_output(engine: StyleEngine, tmp_path: Path, suffix: str) -> None:
    """It used to be dropped without a word."""
    import av

    clip = write_timed_video(tmp_path / "talk.mp4", [i / 12 for i in range(24)], rate=Fraction(12),
                             sound_seconds=2.0)
    result = render_video(clip, tmp_path / f"out{suffix}", engine)

    def sound(path: Path) -> np.ndarray:
        with av.open(str(path)) as container:
            assert container.streams.audio[0].codec_context.name == "aac"
            return np.concatenate([frame.to_ndarray() for frame in container.decode(audio=0)], axis=1)[0]

    before, after = sound(clip), sound(result.path)
    assert len(after) == pytest.approx(2.0 * 48000, rel=0.03)
    loudness = [np.sqrt(np.mean(s[4800:-4800] ** 2)) for s in (before, after)]  # the tone, not silence
    assert loudness[1] == pytest.approx(loudness[0], rel=0.1) and loudness[0] > 0.5  # AAC twice: a little lost
    assert len(read_all_frames(result.path)) == 24
    with av.open(str(result.path)) as container:  # each frame at its time: the sound's start moved them by 23 ms
        times = sorted(float(p.pts * p.time_base) for p in container.demux(video=0) if p.pts is not None)
    np.testing.assert_allclose(times, [i / 12 for i in range(24)], atol=1e-3)


def test_damaged_sound_is_said_and_the_video_is_still_rendered(engine: StyleEngine, tmp_path: Path, monkeypatch,
                                                              caplog) -> None:
    """A damaged input's sound used to fail the render as "recording to out.mp4 failed"."""
    import av

    from nstcam.live import soundtrack

    clip = write_timed_video(tmp_path / "talk.mp4", [i / 12 for i in range(24)], rate=Fraction(12),
                             sound_seconds=2.0)
    opened = soundtrack.Soundtrack.__init__

    def damaged_after_ten_frames(self, source, container) -> None:
        opened(self, source, container)
        frames = self._frames

        def decode():
            for i, frame in enumerate(frames):
                if i == 10:
                    raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")
                yield frame
        self._frames = decode()

    monkeypatch.setattr(soundtrack.Soundtrack, "__init__", damaged_after_ten_frames)
    with caplog.at_level("WARNING", logger="nstcam"):
        result = render_video(clip, tmp_path / "out.mp4", engine)
    assert result.frames == 24 and len(read_all_frames(result.path)) == 24
    said = [r.getMessage() for r in caplog.records if "sound" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"{clip}: its sound is damaged")


def test_sound_that_an_avi_cannot_hold_is_said_to_be_dropped_once(engine: StyleEngine, tmp_path: Path,
                                                                caplog) -> None:
    clip = write_timed_video(tmp_path / "talk.mp4", [i / 12 for i in range(12)], rate=Fraction(12),
                             sound_seconds=1.0)
    with caplog.at_level("WARNING", logger="nstcam"):
        render_video(clip, tmp_path / "o.avi", engine)
    said = [r.getMessage() for r in caplog.records if "sound" in r.getMessage()]
    assert said == [f"{clip} has sound; o.avi will not (MJPG/AVI is written without it)"]


def _steps(*runs: tuple[int, float]) -> list[float]:
    """Presentation times of `count` frames at `fps`, run after run."""
    times, t = [], 0.0
    for count, fps in runs:
        for _ in range(count):
            times.append(t)
            t += 1 / fps
    return times


TIMED_INPUTS = {  # name: (frame times, the rate the container states, or None)
    "ntsc.mp4": (_steps((45, 30000 / 1001)), Fraction(30000, 1001)),
    "unstated.mkv": (_steps((45, 30)), None),  # Matroska then states 24: it played 25 % slow
    "variable.mkv": (_steps((10, 30), (10, 10), (10, 50), (10, 15)), None),
    "variable.mp4": (_steps((10, 50), (10, 12), (10, 30)), None),
}


@pytest.mark.parametrize("name", TIMED_INPUTS)
def test_render_keeps_the_inputs_duration_whatever_its_frame_rate(engine: StyleEngine, tmp_path: Path,
                                                                   name: str) -> None:
    from nstcam_fixtures import video_duration

    times, rate = TIMED_INPUTS[name]
    clip = write_timed_video(tmp_path / name, times, rate=rate)
    result = render_video(clip, tmp_path / "out.mp4", engine)
    assert result.frames == len(times) == len(read_all_frames(result.path))
    assert video_duration(result.path) == pytest.approx(video_duration(clip), rel=0.02)


def test_an_avi_output_of_a_variable_rate_input_says_it_cannot_keep_the_timing(engine: StyleEngine,
                                                                              tmp_path: Path, caplog) -> None:
    clip = write_timed_video(tmp_path / "in.mkv", _steps((70, 30), (30, 10)))  # 5.3 s; 30 fps at first
    with caplog.at_level("WARNING", logger="nstcam"):
        result = render_video(clip, tmp_path / "out.avi", engine)
    assert result.frames == 100 and result.fps == pytest.approx(30, rel=0.02)  # the first frames' rate
    said = [r.getMessage() for r in caplog.records if "AVI" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"{result.path} plays 3.")
    assert said[0].endswith(f"where {clip} lasts 5.27 s: its frame rate varies, which AVI cannot hold; "
                            "write .mp4, .mov or .mkv to keep its timing")


def test_a_very_large_input_is_stylized_at_full_hd_unless_a_size_is_given(tmp_path: Path, video_file: Path,
                                                                         caplog) -> None:
    """At its own size a 4K-and-up clip took minutes before its first frame (without a total)."""
    from nstcam.live.render import default_size

    big = write_video(tmp_path / "big.avi", frames=2, size=(1936, 1096))
    with caplog.at_level("WARNING", logger="nstcam"):
        assert default_size(big) == 1080
        assert default_size(video_file) is None  # 96x64: its own size
    assert [r.getMessage() for r in caplog.records] == [
        f"{big} is 1936x1096; stylizing at 1080 px on the short side (--size N to choose)"]


def grey_clip(path: Path, frames: int) -> Path:
    """A clip whose frame i is one grey level, 10 * i + 20, that survives encoding (`grey_index`)."""
    return write_video(path, frames=frames, draw=lambda i, size: np.full((size[1], size[0], 3), 10 * i + 20, np.uint8))


def grey_index(frame: np.ndarray) -> int:
    """Which frame of a `grey_clip` this is."""
    return round((frame.mean() - 20) / 10)


class OutOfOrder:
    """An engine that stylizes two frames at once and returns each frame as it is (RGB); every
    other frame takes longer, so the next one is ready first."""

    lanes = 2
    style = "plain"

    def __init__(self) -> None:
        self.lanes_used = 0
        self.active = self.most = 0
        self._lock = threading.Lock()

    def use_lanes(self, lanes: int) -> None:
        self.lanes_used = lanes

    def stylize(self, frame: np.ndarray, style: str | None = None) -> np.ndarray:
        with self._lock:
            self.active += 1
            self.most = max(self.most, self.active)
        if round(frame.mean() / 10) % 2 == 0:
            time.sleep(0.04)  # stands in for a slower frame
        with self._lock:
            self.active -= 1
        return np.ascontiguousarray(frame[..., ::-1])


def test_frames_stylized_at_once_are_written_in_order(tmp_path: Path) -> None:
    clip = grey_clip(tmp_path / "grey.avi", 12)
    engine = OutOfOrder()
    result = render_video(clip, tmp_path / "out.mp4", engine)
    assert engine.lanes_used == 2 and engine.most == 2
    assert [grey_index(frame) for frame in read_all_frames(result.path)] == list(range(12))


def test_a_lane_done_first_takes_a_waiting_frame_instead_of_idling(tmp_path: Path) -> None:
    """With only as many frames in flight as lanes, a lane that finished waited for the oldest
    frame to be written before it got another (render ran at 0.8-0.9x the engine alone)."""
    clip = grey_clip(tmp_path / "grey.avi", 6)
    third_done = threading.Event()
    first_saw_third: list[bool] = []

    class FirstWaitsForThird(OutOfOrder):
        def stylize(self, frame: np.ndarray, style: str | None = None) -> np.ndarray:
            index = grey_index(frame)
            if index == 0:
                first_saw_third.append(third_done.wait(timeout=5))
            out = super().stylize(frame, style)
            if index == 2:
                third_done.set()
            return out

    result = render_video(clip, tmp_path / "out.mp4", FirstWaitsForThird())
    assert first_saw_third == [True]  # the other lane went on to frame 3 while frame 1 was held
    assert [grey_index(frame) for frame in read_all_frames(result.path)] == list(range(6))


def test_an_engine_without_lanes_stylizes_on_the_calling_thread(video_file: Path, engine: StyleEngine,
                                                                 tmp_path: Path) -> None:
    """torch's OpenMP team runs best on the main thread; on a worker thread libgomp throttles it."""
    threads: set[str] = set()

    class Noting:
        style = engine.style

        def stylize(self, frame: np.ndarray, style: str | None = None) -> np.ndarray:
            threads.add(threading.current_thread().name)
            return engine.stylize(frame, style)

    render_video(video_file, tmp_path / "out.mp4", Noting())
    assert threads == {threading.current_thread().name}
