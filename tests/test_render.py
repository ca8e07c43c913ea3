"""Offline rendering of a video file: same frame count and rate, stylized size."""
from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from nstcam.engines.torch_engine import StyleEngine
from nstcam.live.render import render_video
from nstcam.live.sources import SourceError
from nstcam_fixtures import read_all_frames


@pytest.fixture
def engine(style_models) -> StyleEngine:
    return StyleEngine(style_models, device="cpu", size=48, channels_last=False)


def test_render_keeps_frame_count_and_rate(video_file: Path, engine: StyleEngine, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    out = tmp_path / "styled.mp4"
    result = render_video(video_file, out, engine, progress=lambda done, total: calls.append((done, total)))
    assert (result.frames, result.fps, result.size) == (24, 12.0, (72, 48))
    assert result.path == out and not result.cancelled
    assert calls[0] == (1, 24) and calls[-1] == (24, 24) and len(calls) == 24
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


def test_render_errors_name_the_input(engine: StyleEngine, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="missing.avi.*does not exist"):
        render_video(tmp_path / "missing.avi", tmp_path / "o.mp4", engine)
    junk = tmp_path / "junk.mp4"
    junk.write_text("no video here")
    with pytest.raises(SourceError, match="junk.mp4"):
        render_video(junk, tmp_path / "o.mp4", engine)
    assert not (tmp_path / "o.mp4").exists()
