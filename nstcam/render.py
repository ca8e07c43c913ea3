"""Offline rendering: stylize every frame of a video file into a new video, nothing dropped.

Unlike the live pipeline this reads the file directly with OpenCV (no capture thread, no pacing,
no "latest frame wins") and writes through a `Recorder` with `realtime=False`, whose `write`
blocks when the encoder is behind. The output keeps the input's frame rate and frame count; its
size is the engine's processing size for the input's frames.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2

from nstcam.engine import StyleEngine
from nstcam.recorder import Recorder, RecorderError
from nstcam.sources import DEFAULT_FPS, SourceError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenderResult:
    """`frames` written at `fps`, each `size` (w, h), to `path` (which may differ from the path
    asked for: existing files are not overwritten). `cancelled`: stopped early by `cancel`."""

    frames: int
    fps: float
    size: tuple[int, int]
    path: Path | None = None
    cancelled: bool = False


def render_video(
    input_path: str | Path,
    output_path: str | Path,
    engine: StyleEngine,
    progress: Callable[[int, int], None] | None = None,
    style: str | None = None,
    cancel: threading.Event | None = None,
) -> RenderResult:
    """Stylize `input_path` into `output_path`; `progress(done, total)` after each frame
    (total 0 if the container does not say). Raises SourceError if the input cannot be read and
    RecorderError if the output cannot be written."""
    input_path = Path(input_path)
    if not input_path.is_file():
        raise SourceError(f"video file {str(input_path)!r} does not exist")
    cap = cv2.VideoCapture(str(input_path))
    if not cap.isOpened():
        cap.release()
        raise SourceError(f"video file {input_path} could not be opened: not a video FFmpeg/OpenCV can decode")
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    if not (0.5 <= fps <= 1000):
        log.warning("%s does not state a usable frame rate; assuming %g fps", input_path, DEFAULT_FPS)
        fps = DEFAULT_FPS
    total = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
    recorder: Recorder | None = None
    frames = 0
    size = (0, 0)
    cancelled = False
    try:
        while True:
            if cancel is not None and cancel.is_set():
                cancelled = True
                break
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            stylized = engine.stylize(frame, style)
            if recorder is None:
                recorder = Recorder(output_path, fps, realtime=False)
                size = (stylized.shape[1], stylized.shape[0])
            recorder.write(stylized)
            if recorder.error:
                raise RecorderError(recorder.error)
            frames += 1
            if progress is not None:
                progress(frames, total)
    finally:
        cap.release()
        if recorder is not None:
            recorder.close()
    if recorder is None:
        raise SourceError(f"video file {input_path} has no readable frames")
    if recorder.error:
        raise RecorderError(recorder.error)
    if recorder.size is not None:
        size = recorder.size
    if total and frames != total and not cancelled:
        log.warning("%s: read %d frames, the container announced %d", input_path, frames, total)
    log.info("rendered %d frames to %s", frames, recorder.path)
    return RenderResult(frames=frames, fps=fps, size=size, path=recorder.path, cancelled=cancelled)
