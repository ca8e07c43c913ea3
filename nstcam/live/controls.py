"""Creative output controls, without Qt: strength, original colours, the style cross-fade and the
recording size. The window, `nstcam render` and snapshots all use these same functions.

    engine -> stabilizer -> OutputControls.prepare: cross-fade (after a style switch)
                         -> OutputControls.finish: the look, also on in-between frames
    look = keep original colours (optional) -> blend toward the input by (1 - strength)

Strength is a pixel blend with the input (resized to the stylized frame), not an interpolation
inside the network: the blend is cheap and proportional, and 0 is exactly the input, which
interpolating the instance norms toward identity is not (figures: docs/design-notes.md).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from nstcam.live.pipeline import FrameResult
from nstcam.live.sinks import RecorderSink
from nstcam.resample import resize_to

COLOR_MODES = ("off", "luminance", "statistics")
"""`luminance`: the output's brightness with the input's chroma (YCrCb, jcjohnson's
-preserve_color); `statistics`: the output's colour mean and spread in Lab matched to the input's."""
RECORD_SIZES = ("camera", "processing")
"""`camera`: the stylized frame upscaled to the camera's resolution; `processing`: as stylized."""
FADE_SECONDS = 0.3
MIN_FADE_STEPS = 2  # intermediate frames a fade shows however slowly the engine runs


@dataclass(frozen=True)
class Look:
    """What is applied to every stylized image, live or snapshot: `strength` in [0, 1] and the
    colour mode (one of COLOR_MODES)."""

    strength: float = 1.0
    colors: str = "off"

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"strength must be between 0 and 1, got {self.strength}")
        if self.colors not in COLOR_MODES:
            raise ValueError(f"unknown colour mode {self.colors!r}; choose one of {', '.join(COLOR_MODES)}")

    @property
    def neutral(self) -> bool:
        """True when the look changes nothing (full strength, own colours)."""
        return self.strength >= 1.0 and self.colors == "off"

    def describe(self) -> str:
        """For the status line, e.g. "strength 60% · colours kept"; empty when neutral."""
        parts = [] if self.strength >= 1.0 else [f"strength {self.strength:.0%}"]
        if self.colors != "off":
            parts.append("colours kept" if self.colors == "luminance" else "colours matched")
        return " · ".join(parts)


def input_at(raw_bgr: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """The captured frame as RGB at `size_wh` (area-averaged when shrinking)."""
    return cv2.cvtColor(resize_to(raw_bgr, size_wh), cv2.COLOR_BGR2RGB)


def keep_luminance(stylized_rgb: np.ndarray, input_rgb: np.ndarray) -> np.ndarray:
    """The stylized image's luminance (Y) with the input's chroma (Cr, Cb)."""
    out = cv2.cvtColor(input_rgb, cv2.COLOR_RGB2YCrCb)
    out[..., 0] = cv2.cvtColor(stylized_rgb, cv2.COLOR_RGB2YCrCb)[..., 0]
    return cv2.cvtColor(out, cv2.COLOR_YCrCb2RGB)


def match_color_statistics(stylized_rgb: np.ndarray, input_rgb: np.ndarray) -> np.ndarray:
    """The stylized image with each Lab channel's mean and standard deviation moved to the
    input's (Reinhard et al. 2001): the painting's strokes, the photo's palette."""
    src = cv2.cvtColor(stylized_rgb, cv2.COLOR_RGB2Lab)
    s_mean, s_std = cv2.meanStdDev(src)
    r_mean, r_std = cv2.meanStdDev(cv2.cvtColor(input_rgb, cv2.COLOR_RGB2Lab))
    gain = (r_std / np.maximum(s_std, 1e-3)).ravel()
    affine = np.hstack([np.diag(gain), r_mean - gain[:, None] * s_mean])  # per channel: gain * x + offset
    return cv2.cvtColor(cv2.transform(src, affine), cv2.COLOR_Lab2RGB)  # uint8, saturated


def apply_look(raw_bgr: np.ndarray, stylized_rgb: np.ndarray, look: Look) -> np.ndarray:
    """`stylized_rgb` with `look` applied, at its own size; `raw_bgr` is the frame it came from."""
    if look.neutral:
        return stylized_rgb
    h, w = stylized_rgb.shape[:2]
    original = input_at(raw_bgr, (w, h))
    if look.strength <= 0.0:
        return original
    out = stylized_rgb
    if look.colors == "luminance":
        out = keep_luminance(out, original)
    elif look.colors == "statistics":
        out = match_color_statistics(out, original)
    if look.strength < 1.0:
        out = cv2.addWeighted(out, look.strength, original, 1.0 - look.strength, 0.0)
    return out


class OutputControls:
    """The controls as a frame processor (nstcam.live.pipeline.FrameProcessor), last in the chain.

    `look` and `fade` may be changed from any thread; each frame reads them once. A style switch
    announced with `fade_from(old_style)` cross-fades over `FADE_SECONDS`: meanwhile each frame is
    also stylized in the old style (through `engine`), so moving things do not leave a frozen
    ghost; the fade advances by time, but shows at least MIN_FADE_STEPS intermediate frames.
    """

    def __init__(self, engine=None, look: Look | None = None, fade: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.look = look or Look()
        self.fade = fade
        self.clock = clock
        self._lock = threading.Lock()
        self._fading: tuple[str, float] | None = None  # old style, start time
        self._fade_steps = 0

    def fade_from(self, old_style: str) -> None:
        """The style just changed from `old_style`: cross-fade (if `fade` is on and there is an engine)."""
        with self._lock:
            self._fading = (old_style, self.clock()) if self.fade and self.engine is not None else None
            self._fade_steps = 0

    @property
    def fading(self) -> bool:
        return self._fading is not None

    def reset(self) -> None:
        """Nothing to forget: the look has no history and a fade is timed by the clock."""

    def process(self, raw_bgr: np.ndarray, stylized_rgb: np.ndarray) -> np.ndarray:
        return self.finish(raw_bgr, self.prepare(raw_bgr, stylized_rgb))

    def prepare(self, raw_bgr: np.ndarray, stylized_rgb: np.ndarray) -> np.ndarray:
        """The cross-fade, on fresh stylizations only (it stylizes the frame in the old style too)."""
        with self._lock:
            fading = self._fading
            if fading is not None:
                self._fade_steps += 1
                steps = self._fade_steps
        if fading is None:
            return stylized_rgb
        old_style, started = fading
        alpha = min((self.clock() - started) / FADE_SECONDS, steps / (MIN_FADE_STEPS + 1))
        if alpha >= 1.0 or old_style not in getattr(self.engine, "style_names", ()):
            with self._lock:
                if self._fading is fading:
                    self._fading = None
            return stylized_rgb
        return self._blend_old(raw_bgr, stylized_rgb, old_style, alpha)

    def finish(self, raw_bgr: np.ndarray, stylized_rgb: np.ndarray) -> np.ndarray:
        """The look, on every frame shown: in-between frames (nstcam.live.inbetween) take it too."""
        return apply_look(raw_bgr, stylized_rgb, self.look)

    def _blend_old(self, raw_bgr: np.ndarray, new_rgb: np.ndarray, old_style: str, alpha: float) -> np.ndarray:
        old_rgb = self.engine.stylize(raw_bgr, style=old_style)
        h, w = new_rgb.shape[:2]
        if old_rgb.shape[:2] != (h, w):
            old_rgb = cv2.resize(old_rgb, (w, h), interpolation=cv2.INTER_LINEAR)
        a = alpha * alpha * (3.0 - 2.0 * alpha)  # smoothstep: no visible jolt at either end
        return cv2.addWeighted(new_rgb, a, old_rgb, 1.0 - a, 0.0)


def at_camera_size(result: FrameResult) -> FrameResult:
    """`result` with its stylized frame upscaled to the captured frame's resolution."""
    h, w = result.raw_bgr.shape[:2]
    if result.stylized_rgb.shape[:2] == (h, w):
        return result
    return replace(result, stylized_rgb=cv2.resize(result.stylized_rgb, (w, h), interpolation=cv2.INTER_LINEAR))


class CameraSizeRecorderSink(RecorderSink):
    """A RecorderSink that records at the camera's resolution (the upscale runs on the stylize
    thread: about 1 ms for 320x240 -> 1280x720)."""

    def offer(self, result: FrameResult) -> None:
        super().offer(at_camera_size(result))


def apply_look_to_files(raw_bgr: np.ndarray, paths: list[Path], look: Look) -> None:
    """Apply `look` to saved RGB images (a snapshot's stylized and refined PNGs) in place,
    atomically: each file is either the old image or the new one, never half-written."""
    from trainer.fileio import atomic_write_bytes

    if look.neutral:
        return
    for path in paths:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise OSError(f"{path}: could not be read back to apply the strength and colours")
        out = apply_look(raw_bgr, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), look)
        ok, buf = cv2.imencode(path.suffix or ".png", cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
        if not ok:
            raise OSError(f"{path}: could not encode the image")
        atomic_write_bytes(path, buf.tobytes())
