"""How steady the stylized video is: clips with known motion, and figures that compare renderers.

A stylized video boils when the texture does not follow the scene. The figure for that is the
*warp error*: frame t+1 warped back onto frame t along the true motion, minus frame t, mean
absolute value over the pixels the motion defines (0-255). On its own it rewards a blurry or a
lagging output, so three more figures guard it: the same warp error for the input (the floor set by
sensor noise), the *strength* (mean |output - input|: how much the style changed the picture) and
the *edge alignment* (correlation of the output's gradient magnitude with the current input's, over
the whole frame and in a band around a moving object: trails and ghosts put edges where the input
has none).

Clips are generated from any photo with an exactly known motion -- pans of 1, 2 and 3 px/frame, a
slow zoom, a still scene, an object crossing a still background, all with Gaussian sensor noise --
or read from a video, whose motion is then estimated with DIS optical flow and a forward-backward
occlusion check. What is measured is any `stylize_clip(frames_bgr) -> frames_rgb` callable.

CLI: `python -m nstcam.measure.stability --help` compares every bundled style without and with the
runtime stabilizer (`nstcam.live.stabilize.FlowStabilizer`).
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from nstcam.live.pipeline import FrameProcessor, FrameResult
from trainer import metrics
from trainer.benchkit import table, write_json
from trainer.cliargs import frame_size, int_at_least
from trainer.images import rgb_array_to_tensor

log = logging.getLogger(__name__)

StylizeClip = Callable[[list[np.ndarray]], list[np.ndarray]]
"""Stylizes a clip: BGR uint8 frames in, RGB uint8 frames out (any one size), in order."""

CLIP_NAMES = ("pan1", "pan2", "pan3", "zoom", "still", "object")
MARGIN = 8  # pixels at the frame's border left out of the warp error (resampling edge effects)
BAND_RADIUS = 12  # half-width of the band around a moving object, in pixels at the clip's size
WARP_GOAL = 1 / 3  # warp error at most this fraction of the baseline's ...
STRENGTH_GOAL = 0.85  # ... with strength at least this fraction of the baseline's ...
EDGE_GOAL = 0.95  # ... and edge alignment (whole frame and band) at least this fraction
DEFAULT_EVAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "eval"
DEFAULT_IMAGES = ("chicago.jpg", "monarch.jpg")


# ----------------------------------------------------------------------------------------------
# Clips


@dataclass
class Motion:
    """Where each pixel of frame t is in frame t+1 (`map_x`, `map_y`: cv2.remap maps, float32),
    and which pixels that is known for (`valid`: not occluded, not near the border)."""

    map_x: np.ndarray
    map_y: np.ndarray
    valid: np.ndarray


@dataclass
class Clip:
    """BGR uint8 frames, the motion between each pair, and the moving object's mask per frame
    (None: no moving object)."""

    name: str
    frames: list[np.ndarray]
    motions: list[Motion]
    object_masks: list[np.ndarray] | None = None

    @property
    def size(self) -> tuple[int, int]:
        h, w = self.frames[0].shape[:2]
        return w, h


def synthetic_scene(width: int = 480, height: int = 360, seed: int = 0) -> np.ndarray:
    """A generated BGR "photo" with smooth shading, fine texture and hard edges (what style
    networks and optical flow both need), so tests need no photo files."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (max(2, height // 40), max(2, width // 40), 3)).astype(np.float32)
    fine = rng.uniform(-40, 40, (max(2, height // 6), max(2, width // 6), 3)).astype(np.float32)
    img = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    img += cv2.resize(fine, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(12):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            cv2.rectangle(img, (x, y), (x + int(rng.integers(10, width // 4)), y + int(rng.integers(10, height // 4))),
                          colour, -1)
        else:
            cv2.circle(img, (x, y), int(rng.integers(5, height // 6)), colour, -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def _add_noise(frame: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    if sigma <= 0:
        return frame
    noisy = frame.astype(np.float32) + rng.normal(0.0, sigma, frame.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _cover(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """`image` scaled (aspect kept) to the smallest size that covers width x height: a camera at
    that size sees the whole scene, not a tiny crop of a large photo."""
    h, w = image.shape[:2]
    k = max(width / w, height / h)
    size = (max(width, round(w * k)), max(height, round(h * k)))
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC
    return cv2.resize(image, size, interpolation=interp)


def _border_mask(size: tuple[int, int], margin: int = MARGIN) -> np.ndarray:
    w, h = size
    mask = np.zeros((h, w), bool)
    mask[margin:h - margin, margin:w - margin] = True
    return mask


def _affine_motion(src: np.ndarray, dst: np.ndarray, size: tuple[int, int]) -> Motion:
    """Motion between two frames cut from one scene by frame->scene affines `src` and `dst`."""
    w, h = size
    m = np.linalg.inv(np.vstack([dst, [0, 0, 1]])) @ np.vstack([src, [0, 0, 1]])
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    mx = (m[0, 0] * xs + m[0, 1] * ys + m[0, 2]).astype(np.float32)
    my = (m[1, 0] * xs + m[1, 1] * ys + m[1, 2]).astype(np.float32)
    inside = (mx >= MARGIN) & (mx <= w - 1 - MARGIN) & (my >= MARGIN) & (my <= h - 1 - MARGIN)
    return Motion(mx, my, inside & _border_mask(size))


def affine_clip(name: str, scene: np.ndarray, affines: Sequence[np.ndarray], size: tuple[int, int],
                noise: float, rng: np.random.Generator) -> Clip:
    """Frames cut from `scene` by 2x3 frame->scene affines (one per frame), plus sensor noise."""
    frames = [
        _add_noise(cv2.warpAffine(scene, a, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                  borderMode=cv2.BORDER_REFLECT), noise, rng)
        for a in affines
    ]
    motions = [_affine_motion(a, b, size) for a, b in zip(affines, affines[1:])]
    return Clip(name, frames, motions)


def pan_clip(image: np.ndarray, speed: int, frames: int, size: tuple[int, int], noise: float,
             rng: np.random.Generator) -> Clip:
    """The camera pans right by `speed` whole pixels per frame: the motion is an exact shift."""
    w, h = size
    scene = _cover(image, w + speed * (frames - 1), h)
    y0 = (scene.shape[0] - h) // 2
    affines = [np.array([[1, 0, speed * t], [0, 1, y0]], np.float64) for t in range(frames)]
    return affine_clip(f"pan{speed}", scene, affines, size, noise, rng)


def zoom_clip(image: np.ndarray, frames: int, size: tuple[int, int], noise: float, rng: np.random.Generator,
              rate: float = 1.01) -> Clip:
    """The camera zooms in by `rate` per frame about the centre (1.01: 1.6 px/frame at the edge of a
    320-wide frame, sub-pixel near the middle)."""
    w, h = size
    scene = _cover(image, w, h)
    cx, cy = (scene.shape[1] - 1) / 2, (scene.shape[0] - 1) / 2
    fx, fy = (w - 1) / 2, (h - 1) / 2
    affines = []
    for t in range(frames):
        s = rate ** -t
        affines.append(np.array([[s, 0, cx - s * fx], [0, s, cy - s * fy]], np.float64))
    return affine_clip("zoom", scene, affines, size, noise, rng)


def still_clip(image: np.ndarray, frames: int, size: tuple[int, int], noise: float, rng: np.random.Generator) -> Clip:
    """Nothing moves: only the sensor noise changes from frame to frame."""
    w, h = size
    scene = _cover(image, w, h)
    x0, y0 = (scene.shape[1] - w) // 2, (scene.shape[0] - h) // 2
    affines = [np.array([[1, 0, x0], [0, 1, y0]], np.float64)] * frames
    return affine_clip("still", scene, affines, size, noise, rng)


def _disc_sprite(image: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured disc with a dark rim (texture: the photo turned upside down, so it is unlike the
    background behind it) and its boolean mask."""
    d = 2 * radius + 1
    texture = cv2.resize(cv2.rotate(image, cv2.ROTATE_180), (d, d), interpolation=cv2.INTER_AREA)
    mask = np.zeros((d, d), np.uint8)
    cv2.circle(mask, (radius, radius), radius, 255, -1)
    rim = np.zeros((d, d), np.uint8)
    cv2.circle(rim, (radius, radius), radius, 255, max(2, radius // 12))
    texture[rim > 0] = (30, 30, 40)
    return texture, mask > 0


def object_clip(image: np.ndarray, frames: int, size: tuple[int, int], noise: float, rng: np.random.Generator,
                velocity: tuple[int, int] = (3, 1)) -> Clip:
    """A textured disc crosses a still background at `velocity` px/frame. The band around it is where
    trails (ghosting) show; the pixels it covers or uncovers between two frames have no motion."""
    w, h = size
    scene = _cover(image, w, h)
    x0, y0 = (scene.shape[1] - w) // 2, (scene.shape[0] - h) // 2
    background = scene[y0:y0 + h, x0:x0 + w]
    radius = max(6, h // 6)
    sprite, sprite_mask = _disc_sprite(scene, radius)
    vx, vy = velocity
    start_x = max(MARGIN, round(w * 0.45 - vx * (frames - 1) / 2) - radius)
    start_y = max(MARGIN, round(h * 0.5 - vy * (frames - 1) / 2) - radius)
    clean, masks = [], []
    for t in range(frames):
        frame, mask = background.copy(), np.zeros((h, w), bool)
        x, y = start_x + vx * t, start_y + vy * t
        region = (slice(y, y + sprite.shape[0]), slice(x, x + sprite.shape[1]))
        window = mask[region]
        sm = sprite_mask[:window.shape[0], :window.shape[1]]
        frame[region][sm] = sprite[:window.shape[0], :window.shape[1]][sm]
        window[sm] = True
        clean.append(frame)
        masks.append(mask)
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    motions = []
    for now, nxt in zip(masks, masks[1:]):
        on_object = cv2.erode(now.astype(np.uint8), kernel) > 0
        near = cv2.dilate((now | nxt).astype(np.uint8), kernel) > 0
        mx = np.where(on_object, xs + vx, xs).astype(np.float32)
        my = np.where(on_object, ys + vy, ys).astype(np.float32)
        motions.append(Motion(mx, my, (on_object | ~near) & _border_mask(size)))
    return Clip("object", [_add_noise(f, noise, rng) for f in clean], motions, masks)


def standard_clips(image: np.ndarray, names: Sequence[str] = CLIP_NAMES, frames: int = 24,
                   size: tuple[int, int] = (320, 240), noise: float = 3.0, seed: int = 0) -> list[Clip]:
    """The clips named in `names` (see CLIP_NAMES) made from one BGR photo."""
    rng = np.random.default_rng(seed)
    makers: dict[str, Callable[[], Clip]] = {
        "pan1": lambda: pan_clip(image, 1, frames, size, noise, rng),
        "pan2": lambda: pan_clip(image, 2, frames, size, noise, rng),
        "pan3": lambda: pan_clip(image, 3, frames, size, noise, rng),
        "zoom": lambda: zoom_clip(image, frames, size, noise, rng),
        "still": lambda: still_clip(image, frames, size, noise, rng),
        "object": lambda: object_clip(image, frames, size, noise, rng),
    }
    unknown = [n for n in names if n not in makers]
    if unknown:
        raise ValueError(f"unknown clip(s) {', '.join(unknown)}; choose from {', '.join(CLIP_NAMES)}")
    return [makers[n]() for n in names]


def estimate_motion(frames: Sequence[np.ndarray]) -> list[Motion]:
    """Motion between consecutive BGR frames by DIS optical flow (medium preset: this measures, it
    need not be fast), trusted only where the forward and backward flows agree (Sundaram et al.'s
    test), which leaves out occlusions and flow failures."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    grays = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in frames]
    h, w = grays[0].shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    border = _border_mask((w, h))
    motions = []
    for a, b in zip(grays, grays[1:]):
        fwd = dis.calc(a, b, None)
        back = dis.calc(b, a, None)
        mx, my = xs + fwd[..., 0], ys + fwd[..., 1]
        back_there = cv2.remap(back, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        gap = np.sum((fwd + back_there) ** 2, axis=2)
        allowed = 0.01 * (np.sum(fwd ** 2, axis=2) + np.sum(back_there ** 2, axis=2)) + 0.5
        inside = (mx >= MARGIN) & (mx <= w - 1 - MARGIN) & (my >= MARGIN) & (my <= h - 1 - MARGIN)
        motions.append(Motion(mx, my, (gap <= allowed) & inside & border))
    return motions


def video_clip(path: Path, size: tuple[int, int] | None = (320, 240), frames: int = 60) -> Clip:
    """Up to `frames` frames of a video file (resized to `size`), its motion estimated by flow."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise ValueError(f"cannot open video {path}: is it a video file OpenCV can decode?")
        read: list[np.ndarray] = []
        while len(read) < frames:
            ok, frame = cap.read()
            if not ok:
                break
            if size is not None and (frame.shape[1], frame.shape[0]) != size:
                frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            read.append(frame)
    finally:
        cap.release()
    if len(read) < 2:
        raise ValueError(f"video {path} has {len(read)} readable frame(s); at least 2 are needed")
    return Clip(path.stem, read, estimate_motion(read))


# ----------------------------------------------------------------------------------------------
# Figures


def _motion_at(motion: Motion, size: tuple[int, int], clip_size: tuple[int, int]) -> Motion:
    """`motion` for frames of another size (when the renderer's output is not the clip's size)."""
    if size == clip_size:
        return motion
    kx, ky = size[0] / clip_size[0], size[1] / clip_size[1]
    mx = (cv2.resize(motion.map_x, size, interpolation=cv2.INTER_LINEAR) + 0.5) * kx - 0.5
    my = (cv2.resize(motion.map_y, size, interpolation=cv2.INTER_LINEAR) + 0.5) * ky - 0.5
    valid = cv2.resize(motion.valid.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    return Motion(mx.astype(np.float32), my.astype(np.float32), valid)


def warp_error(frames: Sequence[np.ndarray], motions: Sequence[Motion], clip_size: tuple[int, int]) -> float:
    """Mean |frame[t+1] warped back onto frame t - frame[t]| over the valid pixels, 0-255."""
    total, count = 0.0, 0
    for now, nxt, motion in zip(frames, frames[1:], motions):
        m = _motion_at(motion, (now.shape[1], now.shape[0]), clip_size)
        back = cv2.remap(nxt, m.map_x, m.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        diff = cv2.absdiff(back, now)[m.valid]
        total += float(diff.sum(dtype=np.float64))
        count += diff.size
    return total / max(count, 1)


def _as_rgb_at(frame_bgr: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
    if rgb.shape[:2] != shape[:2]:
        rgb = cv2.resize(rgb, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    return rgb


def strength(outputs: Sequence[np.ndarray], frames_bgr: Sequence[np.ndarray]) -> float:
    """Mean |output - input| (input resized to the output's size), 0-255: how much style there is."""
    return float(np.mean([metrics.strength(rgb_array_to_tensor(o), rgb_array_to_tensor(_as_rgb_at(f, o.shape)))
                          for o, f in zip(outputs, frames_bgr)]))


def _band(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The pixels within BAND_RADIUS of the object's outline, at the output's size."""
    size = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * BAND_RADIUS + 1,) * 2)
    m = mask.astype(np.uint8)
    band = (cv2.dilate(m, size) > 0) & ~(cv2.erode(m, size) > 0)
    if band.shape != shape[:2]:
        band = cv2.resize(band.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST) > 0
    return band


def edge_alignment(outputs: Sequence[np.ndarray], frames_bgr: Sequence[np.ndarray],
                   masks: Sequence[np.ndarray] | None = None) -> float:
    """Mean edge correlation (`trainer.metrics.edge_correlation`) of the output with the *current*
    input (inside `masks` if given, else the whole frame), from the second frame on (the first has
    no past to ghost). Trails and lag put edges where the current input has none and lower it."""
    scores = []
    for t in range(1, len(outputs)):
        out = outputs[t]
        band = None if masks is None else torch.from_numpy(_band(masks[t], out.shape))
        scores.append(metrics.edge_correlation(rgb_array_to_tensor(out),
                                               rgb_array_to_tensor(_as_rgb_at(frames_bgr[t], out.shape)), band))
    return float(np.mean(scores)) if scores else 0.0


@dataclass
class Figures:
    """One renderer on one clip. `edge_band` is None for a clip without a moving object."""

    warp: float
    input_warp: float
    strength: float
    edge: float
    edge_band: float | None

    def ratios(self, baseline: Figures) -> dict[str, float | None]:
        """Each figure over the baseline's (the goals are stated as such ratios)."""

        def ratio(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None or b == 0 else a / b

        return {
            "warp": ratio(self.warp, baseline.warp),
            "strength": ratio(self.strength, baseline.strength),
            "edge": ratio(self.edge, baseline.edge),
            "edge_band": ratio(self.edge_band, baseline.edge_band),
        }


def evaluate(clip: Clip, outputs: Sequence[np.ndarray]) -> Figures:
    """All figures for the stylized `outputs` of `clip` (RGB, one per frame)."""
    if len(outputs) != len(clip.frames):
        raise ValueError(f"{len(outputs)} output frames for a clip of {len(clip.frames)}")
    inputs_rgb = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in clip.frames]
    return Figures(
        warp=warp_error(outputs, clip.motions, clip.size),
        input_warp=warp_error(inputs_rgb, clip.motions, clip.size),
        strength=strength(outputs, clip.frames),
        edge=edge_alignment(outputs, clip.frames),
        edge_band=edge_alignment(outputs, clip.frames, clip.object_masks) if clip.object_masks else None,
    )


def meets_goals(ratios: dict[str, float | None], warp_goal: float = WARP_GOAL) -> dict[str, bool]:
    """Which of the issue's conditions a renderer's ratios (from `Figures.ratios`) satisfy."""
    return {
        "warp": ratios["warp"] is not None and ratios["warp"] <= warp_goal,
        "strength": ratios["strength"] is not None and ratios["strength"] >= STRENGTH_GOAL,
        "edge": ratios["edge"] is not None and ratios["edge"] >= EDGE_GOAL,
        "edge_band": ratios["edge_band"] is None or ratios["edge_band"] >= EDGE_GOAL,
    }


# ----------------------------------------------------------------------------------------------
# Renderers


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


def strip_image(clip: Clip, baseline: Sequence[np.ndarray], stabilized: Sequence[np.ndarray],
                count: int = 4, gain: float = 4.0) -> np.ndarray:
    """Before/after as one picture (RGB): for `count` consecutive frames, today's output, its
    change from the previous frame once the camera's motion is undone (amplified by `gain`: the
    shimmer a viewer sees), then the same two rows with the stabilizer."""
    rows = []
    for outputs in (baseline, stabilized):
        h, w = outputs[0].shape[:2]
        frames, changes = [], []
        for t in range(1, count + 1):
            m = _motion_at(clip.motions[t - 1], (w, h), clip.size)
            back = cv2.remap(outputs[t], m.map_x, m.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            change = cv2.absdiff(back, outputs[t - 1]).mean(axis=2) * m.valid
            frames.append(outputs[t])
            changes.append(cv2.applyColorMap(np.clip(change * gain, 0, 255).astype(np.uint8), cv2.COLORMAP_INFERNO)[..., ::-1])
        rows += [np.hstack(frames), np.hstack(changes)]
    return np.vstack(rows)


# ----------------------------------------------------------------------------------------------
# Report


@dataclass
class Comparison:
    """Every renderer's figures on every clip for one style, and each processor's ms/frame."""

    style: str
    figures: dict[str, dict[str, Figures]] = field(default_factory=dict)  # clip -> renderer -> figures
    ms_per_frame: dict[str, float] = field(default_factory=dict)  # renderer -> median wall ms/frame
    cpu_ms_per_frame: dict[str, float] = field(default_factory=dict)  # renderer -> median CPU ms/frame


def compare_style(engine: Any, style: str, clips: Sequence[Clip],
                  renderers: dict[str, Renderer]) -> Comparison:
    """Stylize each clip once and give the same stylized frames to each renderer, so the
    renderers are compared side by side on identical input ("baseline": every frame as stylized)."""
    result = Comparison(style)
    times = {name: FrameTimes() for name in renderers}
    for clip in clips:
        stylized = [engine.stylize(f, style=style) for f in clip.frames]
        result.figures[clip.name] = {"baseline": evaluate(clip, stylized)}
        for name, make in renderers.items():
            outputs = make(clip.frames, stylized, times[name])
            result.figures[clip.name][name] = evaluate(clip, outputs)
    for name, t in times.items():
        result.ms_per_frame[name], result.cpu_ms_per_frame[name] = t.medians()
    return result


def _rows(results: Sequence[Comparison]) -> list[dict[str, Any]]:
    rows = []
    for res in results:
        for clip, by_renderer in res.figures.items():
            base = by_renderer["baseline"]
            for name, fig in by_renderer.items():
                r = fig.ratios(base)
                rows.append({
                    "style": res.style, "clip": clip, "renderer": name, "input_warp": fig.input_warp,
                    "warp": fig.warp, "strength": fig.strength, "edge": fig.edge, "edge_band": fig.edge_band,
                    "warp_ratio": r["warp"], "strength_ratio": r["strength"], "edge_ratio": r["edge"],
                    "band_ratio": r["edge_band"],
                })
    return rows


def _summary(results: Sequence[Comparison]) -> list[dict[str, Any]]:
    """Per style and renderer: warp-error ratio per clip, the worst strength and edge ratios over
    all clips, and whether every goal holds on every clip."""
    rows = []
    for res in results:
        renderers = [n for n in next(iter(res.figures.values())) if n != "baseline"]
        for name in renderers:
            row: dict[str, Any] = {"style": res.style, "renderer": name}
            ok = True
            strengths, edges, bands = [], [], []
            for clip, by_renderer in res.figures.items():
                r = by_renderer[name].ratios(by_renderer["baseline"])
                row[clip] = r["warp"]
                strengths.append(r["strength"])
                edges.append(r["edge"])
                if r["edge_band"] is not None:
                    bands.append(r["edge_band"])
                ok &= all(meets_goals(r, WARP_GOAL if clip != "still" else 1.0).values())
            row.update(strength=min(strengths), edge=min(edges), band=min(bands) if bands else None,
                       ms=res.ms_per_frame.get(name), cpu_ms=res.cpu_ms_per_frame.get(name),
                       goals="yes" if ok else "no")
            rows.append(row)
    return rows


def format_report(results: Sequence[Comparison], clip_names: Sequence[str]) -> str:

    detail = table(_rows(results), [
        ("style", "style", ""), ("clip", "clip", ""), ("renderer", "renderer", ""),
        ("in warp", "input_warp", ".2f"), ("warp", "warp", ".2f"), ("strength", "strength", ".1f"),
        ("edge", "edge", ".3f"), ("band", "edge_band", ".3f"), ("warp x", "warp_ratio", ".2f"),
        ("str x", "strength_ratio", ".2f"), ("edge x", "edge_ratio", ".2f"), ("band x", "band_ratio", ".2f"),
    ])
    summary = table(_summary(results), [
        ("style", "style", ""), ("renderer", "renderer", ""),
        *[(f"{c} warp x", c, ".2f") for c in clip_names],
        ("strength x", "strength", ".2f"), ("edge x", "edge", ".2f"), ("band x", "band", ".2f"),
        ("ms/frame", "ms", ".2f"), ("CPU ms/frame", "cpu_ms", ".2f"), ("goals", "goals", ""),
    ])
    return (f"{detail}\n\nRatios to the baseline (warp: lower is steadier; worst clip for strength and "
            f"edges; goals: warp <= {WARP_GOAL:.2f}x except on the still clip, strength >= {STRENGTH_GOAL}x, "
            f"edges >= {EDGE_GOAL}x)\n{summary}")


def to_json(results: Sequence[Comparison], meta: dict[str, Any]) -> dict[str, Any]:
    return {"meta": meta, "rows": _rows(results), "summary": _summary(results)}


# ----------------------------------------------------------------------------------------------
# CLI


def _parse_keep(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m nstcam.measure.stability",
        description="Measure how steady the stylized video is, for every style, without and with the "
                    "runtime stabilizer, on clips with known motion (or on videos).",
    )
    p.add_argument("--images", nargs="+", type=Path, metavar="IMG",
                   help="photos to make the clips from (default: "
                        f"{', '.join(DEFAULT_IMAGES)} from {DEFAULT_EVAL}); figures are averaged over them")
    p.add_argument("--video", nargs="+", type=Path, metavar="FILE",
                   help="measure these videos instead of generated clips (motion estimated by DIS optical "
                        "flow with a forward-backward occlusion check)")
    p.add_argument("--clips", default=",".join(CLIP_NAMES), metavar="NAME[,NAME...]",
                   help=f"generated clips to run (default: all of {','.join(CLIP_NAMES)}; pans in px/frame)")
    p.add_argument("--frames", type=int, default=24, metavar="N", help="frames per clip (default: 24)")
    p.add_argument("--size", type=frame_size(64), default=(320, 240), metavar="WxH",
                   help="clip size; the engine stylizes at this size (default: 320x240)")
    p.add_argument("--noise", type=float, default=3.0, metavar="SIGMA",
                   help="Gaussian sensor noise added to generated clips, 0-255 scale (default: 3)")
    p.add_argument("--styles", metavar="NAME[,NAME...]", help="styles to measure (default: all)")
    p.add_argument("--styles-dir", metavar="DIR", help="extra style folder (besides the bundled styles)")
    p.add_argument("--device", default="cpu", help="engine device: cpu, cuda, auto (default: cpu)")
    p.add_argument("--threads", type=int, metavar="N", help="torch and OpenCV CPU threads (default: their choice)")
    p.add_argument("--ema", type=_parse_keep, metavar="KEEP",
                   help="also report the naive exponential blend of past outputs with this weight on the "
                        "past (e.g. 0.7), to show what ignoring motion costs")
    p.add_argument("--inbetween", type=int_at_least(2), nargs="+", metavar="K",
                   help="also report in-between frames (nstcam.live.inbetween) for an engine K times slower "
                   "than the camera: every K-th frame stylized and ready K frames later, the others moved "
                   "along the flow from it; without and with the stabilizer on the stylized frames, and "
                   "the stylized frames held instead (what is shown without in-between frames)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sensor noise (default: 0)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write every figure as JSON (atomically)")
    p.add_argument("--strip", type=Path, metavar="PNG",
                   help="also save a before/after picture: the first style on the first clip, four "
                   "frames and their motion-compensated change (the shimmer), without and with the stabilizer")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress")
    return p


def _load_clips(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[list[Clip]]:
    """One list of clips per photo (their figures are averaged), or one list of all the videos;
    a bad path ends the run with a message."""
    if args.video:
        try:
            return [[video_clip(v, args.size, max(args.frames, 2)) for v in args.video]]
        except ValueError as exc:
            parser.error(str(exc))
    images = args.images or [DEFAULT_EVAL / name for name in DEFAULT_IMAGES]
    names = [n.strip() for n in args.clips.split(",") if n.strip()]
    if args.frames < 2:
        parser.error("--frames must be at least 2")
    sets = []
    for path in images:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            hint = " (or pass --images)" if not args.images else ""
            parser.error(f"cannot read image {path}: is the path right and the file a photo?{hint}")
        try:
            sets.append(standard_clips(image, names, args.frames, args.size, args.noise, args.seed))
        except ValueError as exc:
            parser.error(str(exc))
    return sets


def _average(per_image: Sequence[Comparison]) -> Comparison:
    """The figures of one style averaged over the photos (one Comparison each)."""
    first = per_image[0]

    def median_over_images(attr: str) -> dict[str, float]:
        return {k: statistics.median(getattr(c, attr)[k] for c in per_image) for k in getattr(first, attr)}

    merged = Comparison(first.style, ms_per_frame=median_over_images("ms_per_frame"),
                        cpu_ms_per_frame=median_over_images("cpu_ms_per_frame"))
    for clip, by_renderer in first.figures.items():
        merged.figures[clip] = {}
        for name in by_renderer:
            figs = [c.figures[clip][name] for c in per_image]
            band = [f.edge_band for f in figs if f.edge_band is not None]
            merged.figures[clip][name] = Figures(
                warp=float(np.mean([f.warp for f in figs])),
                input_warp=float(np.mean([f.input_warp for f in figs])),
                strength=float(np.mean([f.strength for f in figs])),
                edge=float(np.mean([f.edge for f in figs])),
                edge_band=float(np.mean(band)) if band else None,
            )
    return merged


def main(argv: Sequence[str] | None = None) -> int:
    from nstcam.launch import CliError
    from nstcam.live.stabilize import FlowStabilizer

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    clip_sets = _load_clips(args, parser)
    try:
        engine = default_engine(args.device, args.styles_dir)
    except CliError as exc:
        parser.error(str(exc))
    styles = engine.style_names
    if args.styles:
        styles = [s.strip() for s in args.styles.split(",") if s.strip()]
        unknown = [s for s in styles if s not in engine.style_names]
        if unknown:
            parser.error(f"unknown style(s) {', '.join(unknown)}; available: {', '.join(engine.style_names)}")
    renderers: dict[str, Renderer] = {"stabilized": with_processors(lambda: [FlowStabilizer()])}
    if args.ema:
        renderers["ema"] = with_processors(lambda: [EmaBlend(args.ema)])
    for every in args.inbetween or ():
        renderers[f"held/{every}"] = inbetween_renderer(every, move=False)
        renderers[f"inbetween/{every}"] = inbetween_renderer(every)
        renderers[f"inbetween/{every}+stab"] = inbetween_renderer(every, lambda: [FlowStabilizer()])
    engine.warmup(*args.size)
    results = []
    for style in styles:
        log.info("measuring %s", style)
        results.append(_average([compare_style(engine, style, clips, renderers) for clips in clip_sets]))
    clip_names = list(results[0].figures) if results else []
    print(format_report(results, clip_names))
    if args.strip:
        clip = clip_sets[0][0]
        plain = engine_stylizer(engine, styles[0])(clip.frames)
        steady = apply_processors(clip.frames, plain, [FlowStabilizer()])
        from trainer.fileio import atomic_write_bytes

        ok, png = cv2.imencode(".png", strip_image(clip, plain, steady)[..., ::-1])
        atomic_write_bytes(args.strip, png.tobytes())
    if args.json:
        import torch

        meta = {
            "argv": list(argv) if argv is not None else sys.argv[1:],
            "engine": engine.describe(), "torch_threads": torch.get_num_threads(),
            "opencv_threads": cv2.getNumThreads(), "loadavg": [round(v, 2) for v in os.getloadavg()],
            "size": list(args.size), "frames": args.frames, "noise": args.noise,
            "sources": [str(p) for p in (args.video or args.images or [DEFAULT_EVAL / n for n in DEFAULT_IMAGES])],
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        write_json(args.json, to_json(results, meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
