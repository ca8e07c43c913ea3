"""Offline rendering: stylize every frame of a video file into a new video, nothing dropped.

The frames take the live path's pieces: `CvSource` reads and normalises them (grey, BGRA and
16-bit frames become BGR uint8, as in the window), the engine stylizes each (an engine with lanes,
ONNX Runtime on a CPU, two at once, with as many more read and waiting: `frames_in_flight`)
while a `ChainThread` runs the processors on the ones before,
in order (as in the window), and a `RecorderSink` over a `Recorder` with `realtime=False` (whose
`write` blocks when the encoder is behind) writes them. The output keeps the input's frame count and each
frame's time (so its length and a variable frame rate; the rate is measured from the timestamps,
not taken from the container's often wrong statement); its size is the engine's processing size
for the input's frames. AVI (MJPG) holds one constant rate, and says so when that changes the length.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nstcam.live.capture import BadFrame, to_bgr8
from nstcam.live.pipeline import (ChainThread, FramePath, FrameProcessor, Stylizer, engine_lanes, frames_in_flight,
                                  in_order, lane_pool)
from nstcam.live.probe import MediaInfo, probe_media
from nstcam.live.recorder import Recorder, RecorderError
from nstcam.live.sinks import RecorderSink
from nstcam.live.sources import CvSource, SourceError

log = logging.getLogger(__name__)

DURATION_TOLERANCE = 0.02  # the output's length may differ from the input's by this fraction
# The processing short side when none is asked for: the input's own up to Full HD. An 8K clip at
# its own size takes minutes a frame on a CPU and tens of GB; past 1080 the strokes barely change.
DEFAULT_MAX_SIZE = 1080
FINISH_SECONDS = 30.0  # what the chain may take for its last frame (the encoder may be behind)


@dataclass(frozen=True)
class RenderResult:
    """`frames` written at `fps`, each `size` (w, h), to `path` (which may differ from the path
    asked for: existing files are not overwritten). `cancelled`: stopped early by `cancel`."""

    frames: int
    fps: float
    size: tuple[int, int]
    path: Path | None = None
    cancelled: bool = False


def open_video(input_path: str | Path) -> tuple[CvSource, MediaInfo | None]:
    """The input as a frame source, and what its container holds; SourceError names the file and
    what is wrong with it when it cannot be rendered."""
    input_path = Path(input_path)
    if not input_path.is_file():
        raise SourceError(f"video file {str(input_path)!r} does not exist")
    info = probe_media(input_path)
    if info is not None and info.no_pictures:
        raise SourceError(f"{input_path} holds {info.no_pictures}; nstcam render needs a video file")
    if info is not None and info.video_packets == 0:
        raise SourceError(f"{input_path}: its video stream holds no frames; nothing to render")
    try:
        source = CvSource(str(input_path))
    except SourceError:
        raise SourceError(f"{input_path} could not be opened: it is not a video FFmpeg/OpenCV can decode, "
                          "or it is damaged; try another file") from None
    if not source.fps_stated:
        log.warning("%s does not state a usable frame rate; assuming %g fps", input_path, source.fps)
    if info is not None and info.rate is None and info.video_packets > 1:
        log.warning("%s: its frames carry no timestamps; assuming the %g fps it states", input_path, source.fps)
    return source, info


def default_size(input_path: str | Path) -> int | None:
    """render's processing size when --size is not given: None (the input's own) unless the
    input's short side is over DEFAULT_MAX_SIZE, which is then used, and said."""
    info = probe_media(input_path)
    if info is None or min(info.size) <= DEFAULT_MAX_SIZE:
        return None
    log.warning("%s is %dx%d; stylizing at %d px on the short side (--size N to choose)", input_path,
                *info.size, DEFAULT_MAX_SIZE)
    return DEFAULT_MAX_SIZE


def _frame_time(position: float | None, last: float | None, fps: float) -> float:
    """A frame's presentation time (s): the file's timestamp where they increase, else one frame
    period after the last (a raw stream without timestamps, a stalled one)."""
    if position is not None and (last is None or position > last):
        return position
    return 0.0 if last is None else last + 1 / fps


def _check_constant_rate(recorder: Recorder, input_seconds: float, input_path: str | Path) -> None:
    """MJPG in AVI holds one frame rate: say so when that changes the video's length (a variable-rate input)."""
    seconds = recorder.frames_written / recorder.fps
    if abs(seconds / input_seconds - 1) > DURATION_TOLERANCE:
        log.warning("%s plays %.2f s where %s lasts %.2f s: its frame rate varies, which AVI cannot hold; "
                    "write .mp4, .mov or .mkv to keep its timing", recorder.path, seconds, input_path, input_seconds)


class _Output:
    """The render's output: a recorder and the chain that feeds it, opened with the first
    stylized frame (an engine that fails at once leaves no file behind)."""

    def __init__(self, output_path: str | Path, fps: float, sound_from: str | Path | None, path: FramePath) -> None:
        self.output_path, self.fps, self.sound_from, self.path = output_path, fps, sound_from, path
        self.sink: RecorderSink | None = None
        self.chain: ChainThread | None = None
        self.failures: list[Exception] = []  # from the chain's thread: a processor or the recorder's hand-off

    def hand(self, stylized: tuple[str, np.ndarray], frame: np.ndarray, index: int, stamp: float) -> None:
        """Pass frame `index`, stylized (the style's name and its picture), to the chain."""
        name, picture = stylized
        chain = self.chain
        if chain is None:
            self.sink = RecorderSink(Recorder(self.output_path, self.fps, realtime=False, sound_from=self.sound_from))
            self.chain = chain = ChainThread(self.path, self.sink.offer, self.failures.append)
            chain.start()
        chain.hand(frame, picture, index, stamp, name)  # the chain runs while the engine does the next frames

    @property
    def stopped(self) -> bool:
        """The chain or the recorder failed: no more frames can be written."""
        return bool(self.failures) or (self.sink is not None and self.sink.recorder.error is not None)

    def finish(self) -> None:
        """Let the chain finish the frame it holds (idempotent), so the recorder gets every frame
        stylized before it closes."""
        if self.chain is not None:
            self.chain.close(FINISH_SECONDS)

    def discard(self) -> str:
        """Close and remove an unfinished output (a failed render leaves no half-written file);
        returns what to add to the error message."""
        if self.sink is None:
            return ""
        recorder = self.sink.recorder
        recorder.close()
        if recorder.special or not recorder.path.exists():
            return ""
        recorder.path.unlink()
        return f"; the unfinished {recorder.path.name} was removed"


def render_video(
    input_path: str | Path,
    output_path: str | Path,
    engine: Stylizer,
    progress: Callable[[int, int], None] | None = None,
    style: str | None = None,
    cancel: threading.Event | None = None,
    processors: Sequence[FrameProcessor] = (),
) -> RenderResult:
    """Stylize `input_path` into `output_path`; `progress(done, total)` before the first frame
    and after each (total 0 if the container does not say). Raises SourceError if the input cannot be read and
    RecorderError if the output cannot be written (or fewer frames reached it than were written:
    a disk that filled up); either way the unfinished output is removed. Ctrl-C leaves the frames
    written so far as a playable file."""
    source, info = open_video(input_path)
    path = FramePath(engine, processors)
    total = (info.frames if info is not None and info.frames else source.frame_count) or 0
    if progress is not None:
        progress(0, total)  # the total shows before the first frame, which may take long
    out = _Output(output_path, source.fps, input_path if info is not None and info.audio else None, path)
    lanes = engine_lanes(engine)  # frames stylized at once; the chain gets them in order
    frames = 0
    cancelled = False
    first_t = t = None

    def read() -> Iterator[tuple[np.ndarray, int, float]]:
        """The input's frames, with their number and time, until it ends, the output stops or
        the render is cancelled."""
        nonlocal frames, cancelled, first_t, t
        while not out.stopped:
            if cancel is not None and cancel.is_set():
                cancelled = True
                return
            frame = source.read()
            if frame is None:
                return
            try:
                frame = to_bgr8(frame)
            except BadFrame as exc:
                raise SourceError(f"{input_path}: frame {frames + 1} is corrupt ({exc})") from None
            frames += 1
            t = _frame_time(source.position, t, source.fps)
            first_t = t if first_t is None else first_t
            yield frame, frames, t

    try:
        with lane_pool(lanes) as pool:
            for (frame, index, stamp), stylized in in_order(pool, lambda item: path.stylize(item[0], style), read(),
                                                            frames_in_flight(lanes)):
                if out.stopped:
                    break
                out.hand(stylized, frame, index, stamp)
                if progress is not None:
                    progress(index, total)
        out.finish()
        if out.failures:
            raise out.failures[0]
    except KeyboardInterrupt:
        raise  # Ctrl-C, SIGTERM: what was written is finished below into a playable file
    except BaseException:
        out.finish()
        out.discard()
        raise
    finally:
        out.finish()
        source.release()
        if out.sink is not None:
            out.sink.recorder.close()
    sink = out.sink
    if sink is None:
        raise SourceError(f"video file {input_path} has no readable frames")
    recorder = sink.recorder
    if recorder.error:
        raise RecorderError(f"{recorder.error}{out.discard()}")
    if recorder.codec == "mjpg" and frames > 1:
        _check_constant_rate(recorder, t - first_t + 1 / source.fps, input_path)
    if total and frames != total and not cancelled:
        log.warning("%s: read %d frames, the container announced %d", input_path, frames, total)
    log.info("rendered %d frames to %s", frames, recorder.path)
    return RenderResult(frames=frames, fps=source.fps, size=recorder.size or (0, 0), path=recorder.path,
                        cancelled=cancelled)
