"""A small, varied, photo-like training set made on the spot: "New style…" works without photos.

Why generated: the photos the bundled styles were trained on may not be redistributed, and a
new user may have no photo folder at hand. Half the set is the demo scene (nstcam.live.demo) at
different moments, sizes and crops (sky gradients, hard edges, a face, text); the other half is
procedural: soft colour fields with shapes, stripes and fine noise, for flat areas and textures
the scene lacks. Photos of one's own train a better style; the window lets the user pick a folder.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from nstcam.live.demo import DemoSource
from nstcam.resample import resize_to

COUNT = 48
SHORT_SIDE = 256
_SCENE_SIZES = ((320, 240), (400, 300), (240, 320), (360, 360), (480, 270))


def scene_photo(i: int) -> np.ndarray:
    """Image `i` of the set (BGR uint8, short side SHORT_SIDE): a pure function of `i`."""
    rng = np.random.default_rng(i)
    img = _scene(i, rng) if i % 2 == 0 else _procedural(rng)
    h, w = img.shape[:2]
    k = SHORT_SIDE / min(h, w)
    return resize_to(img, (round(w * k), round(h * k)), enlarge=cv2.INTER_CUBIC)


def ensure_scene_photos(folder: Path, count: int = COUNT) -> Path:
    """Write the set into `folder` (made if needed) unless it is already there; returns `folder`."""
    from trainer.fileio import atomic_write_bytes

    for i in range(count):
        path = folder / f"scene_{i:03d}.png"
        if not path.is_file():
            ok, data = cv2.imencode(".png", scene_photo(i))
            if not ok:
                raise OSError(f"could not encode {path.name}")
            atomic_write_bytes(path, data.tobytes())
    return folder


def _scene(i: int, rng: np.random.Generator) -> np.ndarray:
    """A demo-scene frame at a moment and size of its own, cropped to 60-100% of each side."""
    w, h = _SCENE_SIZES[(i // 2) % len(_SCENE_SIZES)]
    img = DemoSource(w, h).frame_at(int(rng.integers(0, 30 * 60)))
    cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return img[y:y + ch, x:x + cw]


def _procedural(rng: np.random.Generator, size: tuple[int, int] = (320, 256)) -> np.ndarray:
    """A soft colour field with a few shapes, a band of stripes and fine grain."""
    w, h = size
    coarse = rng.uniform(20, 235, (3, 4, 3)).astype(np.float32)
    img = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(3, 8))):
        colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        kind = rng.integers(0, 3)
        if kind == 0:
            cv2.circle(img, centre, int(rng.integers(8, h // 3)), colour, -1, cv2.LINE_AA)
        elif kind == 1:
            corner = (centre[0] + int(rng.integers(-w // 3, w // 3)), centre[1] + int(rng.integers(-h // 3, h // 3)))
            cv2.rectangle(img, centre, corner, colour, -1, cv2.LINE_AA)
        else:
            end = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.line(img, centre, end, colour, int(rng.integers(1, 6)), cv2.LINE_AA)
    period = rng.uniform(6, 24)
    angle = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    band = (np.abs(yy - rng.uniform(0, h)) < h * 0.15)[..., None]
    img = np.where(band, img * (0.8 + 0.2 * stripes[..., None]), img)
    img += rng.normal(0, rng.uniform(2, 10), img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)
