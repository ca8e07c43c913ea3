"""Renderers: what is shown for a clip given its stylized frames (every frame through the runtime's
processors, a naive blend, in-between frames for a slow engine), each timed per frame."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nstcam.live.pipeline import FrameProcessor, FrameResult

StylizeClip = Callable[[list[np.ndarray]], list[np.ndarray]]
"""Stylizes a clip: BGR uint8 frames in, RGB uint8 frames out (any one size), in order."""


class EmaBlend:
    """The naive stabilizer, kept only as a baseline for the report and the ghosting test: an
    exponential moving average of past outputs, blind to motion (so anything that moves smears)."""

    def __init__(self, keep: float = 0.7) -> None:
        self.keep = keep
        self._avg: np.ndarray | None = None

    def reset(self) -> None:
        self._avg = None

    def process(self, raw_bgr: np.ndarray, stylized_rgb: np.ndarray) -> np.ndarray:
        if self._avg is None or self._avg.shape != stylized_rgb.shape:
            self._avg = stylized_rgb.astype(np.float32)
        else:
            self._avg = self.keep * self._avg + (1.0 - self.keep) * stylized_rgb
        return np.clip(np.rint(self._avg), 0, 255).astype(np.uint8)


@dataclass
class FrameTimes:
    """Per-frame processing times in ms: wall clock, and the calling thread's CPU time, which a
    machine shared with other work inflates far less. The CPU time leaves out OpenCV's worker
    threads: it is the whole cost only with one OpenCV thread (the CLI's --threads 1)."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def medians(self) -> tuple[float, float]:
        return statistics.median(self.wall), statistics.median(self.cpu)


def apply_processors(frames_bgr: Sequence[np.ndarray], stylized: Sequence[np.ndarray],
                     processors: Sequence[FrameProcessor], times: FrameTimes | None = None) -> list[np.ndarray]:
    """Run already-stylized frames through `processors` in order, as the live session does (each
    reset first: a clip is a new scene), recording each frame's processing time in `times`."""
    for p in processors:
        p.reset()
    outputs = []
    for raw, out in zip(frames_bgr, stylized):
        t0, c0 = time.perf_counter(), time.thread_time()
        for p in processors:
            out = p.process(raw, out)
        if times is not None:
            times.cpu.append(1e3 * (time.thread_time() - c0))
            times.wall.append(1e3 * (time.perf_counter() - t0))
        outputs.append(out)
    return outputs


Renderer = Callable[[Sequence[np.ndarray], Sequence[np.ndarray], FrameTimes], list[np.ndarray]]
"""The frames shown for a clip's raw BGR frames, given every frame's stylization (a renderer may
use only some of them); it records its per-frame cost in the FrameTimes."""


def with_processors(make: Callable[[], Sequence[FrameProcessor]]) -> Renderer:
    """Every frame stylized, then run through fresh `make()` processors."""
    return lambda frames_bgr, stylized, times: apply_processors(frames_bgr, stylized, make(), times)


def inbetween_renderer(every: int, make: Callable[[], Sequence[FrameProcessor]] = list, fps: float = 30.0,
                       move: bool = True) -> Renderer:
    """An engine `every` times slower than the camera, as the live window runs it with in-between
    frames (nstcam.live.inbetween): frames 0, every, 2*every... are stylized (then run through
    `make()`'s processors), each ready `every` frames after its own (frame 0's at once); every
    other frame is the newest ready one moved along the flow, or, where none can be made, the
    frame shown before held. The times are the in-between frames'. `move=False`: the newest
    ready frame held, as a recording does without in-between frames (nstcam.live.sinks)."""
    from nstcam.live.inbetween import Inbetweener

    def render(frames_bgr: Sequence[np.ndarray], stylized: Sequence[np.ndarray], times: FrameTimes) -> list[np.ndarray]:
        processors = list(make())
        keys = apply_processors(frames_bgr[::every], stylized[::every], processors)
        maker = Inbetweener()
        outputs = [keys[0]]
        for t in range(1, len(frames_bgr)):
            j = max(0, (t - every) // every)  # the newest keyframe ready by frame t
            if maker.key is None or maker.key.seq != j * every + 1:
                maker.keep(FrameResult(seq=j * every + 1, raw_bgr=frames_bgr[j * every], stylized_rgb=keys[j],
                                       style="", latency_ms=0.0, engine_fps=0.0, t_captured=j * every / fps))
            t0, c0 = time.perf_counter(), time.thread_time()
            made = maker.make(frames_bgr[t], t + 1, t / fps) if move else (keys[j], maker.key)
            times.cpu.append(1e3 * (time.thread_time() - c0))
            times.wall.append(1e3 * (time.perf_counter() - t0))
            outputs.append(outputs[-1] if made is None else made[0])
        return outputs

    return render


def engine_stylizer(engine: Any, style: str | None = None, processors: Sequence[FrameProcessor] = (),
                    times: FrameTimes | None = None) -> StylizeClip:
    """A `StylizeClip` running each frame through `engine` (a `nstcam.engines.torch_engine.StyleEngine`) with
    `style`, then through `processors`."""

    def stylize_clip(frames_bgr: list[np.ndarray]) -> list[np.ndarray]:
        stylized = [engine.stylize(f, style=style) for f in frames_bgr]
        return apply_processors(frames_bgr, stylized, processors, times) if processors else stylized

    return stylize_clip


def default_engine(device: str = "cpu", styles_dir: str | None = None) -> Any:
    """A StyleEngine with every bundled style (plus `styles_dir`'s), running at the input's size."""
    from nstcam.launch import build_engine, check_style, load_registry, resolve_device

    registry, dirs = load_registry([styles_dir] if styles_dir else [])
    style = check_style(registry, None, dirs)
    return build_engine(registry, resolve_device(device), None, style)
