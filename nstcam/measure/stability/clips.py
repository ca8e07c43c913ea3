"""Clips with an exactly known motion, generated from a photo, or read from a video whose motion is
estimated by optical flow: what the stability figures are measured on."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from nstcam.resample import resize_to

CLIP_NAMES = ("pan1", "pan2", "pan3", "zoom", "still", "object")
MARGIN = 8  # pixels at the frame's border left out of the warp error (resampling edge effects)


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
    return resize_to(image, size, enlarge=cv2.INTER_CUBIC)


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
