"""A built-in animated scene, so the app works (and can be demonstrated) without any camera.

It has what makes style transfer visible: a smooth sky gradient, a bright sun, layered hills with
edges, a face and some text. Frame `i` is a pure function of `i` and the size, and costs a few
milliseconds of numpy/OpenCV drawing.
"""
from __future__ import annotations

import math

import cv2
import numpy as np


class DemoSource:
    """An endless, deterministic FrameSource; the capture thread paces it at `fps`."""

    is_file = False
    live = False
    frame_count = None

    def __init__(self, width: int = 640, height: int = 480, fps: float = 30) -> None:
        if width < 16 or height < 16:
            raise ValueError(f"demo scene of {width}x{height} is too small (16x16 at least)")
        self.size = (int(width), int(height))
        self.fps = float(fps)
        self.description = f"demo scene {width}x{height}"
        self.index = 0
        self._sky = self._sky_gradient(width, height)

    @staticmethod
    def _sky_gradient(width: int, height: int) -> np.ndarray:
        top = np.array([160, 90, 30], np.float32)      # deep blue (BGR)
        bottom = np.array([235, 215, 255], np.float32)  # pale pink near the horizon
        t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
        column = top * (1 - t) + bottom * t
        return np.repeat(column[:, None, :], width, axis=1).astype(np.uint8)

    def read(self) -> np.ndarray:
        frame = self.frame_at(self.index)
        self.index += 1
        return frame

    def release(self) -> None:
        pass

    def frame_at(self, index: int) -> np.ndarray:
        """The scene at frame `index` (time = index / fps)."""
        w, h = self.size
        s = min(w, h) / 480.0  # scale for line widths and radii
        t = index / self.fps
        img = self._sky.copy()

        # Sun on a slow arc across the sky, with a soft halo.
        phase = (t / 20.0) % 1.0
        sun = (int(w * (0.1 + 0.8 * phase)), int(h * (0.45 - 0.3 * math.sin(math.pi * phase))))
        cv2.circle(img, sun, int(60 * s), (170, 230, 255), -1, cv2.LINE_AA)
        cv2.circle(img, sun, int(40 * s), (80, 210, 255), -1, cv2.LINE_AA)

        # A cloud drifting right, wrapping around.
        cx = int((t * 25 * s) % (w + 200 * s) - 100 * s)
        for dx, dy, r in ((0, 0, 28), (30, -12, 34), (62, 0, 26)):
            cv2.circle(img, (cx + int(dx * s), int(h * 0.18) + int(dy * s)), int(r * s), (250, 250, 250), -1, cv2.LINE_AA)

        # Two rolling hill layers scrolling at different speeds (parallax).
        xs = np.linspace(0, w, 65)
        for base, amp, wave, speed, colour in (
            (0.62, 0.06, 2.5, 0.6, (90, 150, 60)),
            (0.75, 0.05, 4.0, 1.4, (40, 110, 30)),
        ):
            ys = h * (base + amp * np.sin(2 * np.pi * (wave * xs / w + speed * t / 4)))
            pts = np.concatenate([np.stack([xs, ys], 1), [[w, h], [0, h]]]).astype(np.int32)
            cv2.fillPoly(img, [pts], colour, cv2.LINE_AA)

        # A smiling face bobbing left and right in front of the hills.
        fx = int(w * (0.5 + 0.25 * math.sin(2 * math.pi * t / 6)))
        fy = int(h * (0.62 + 0.04 * math.sin(2 * math.pi * t / 1.5)))
        r = int(70 * s)
        cv2.circle(img, (fx, fy), r, (120, 200, 250), -1, cv2.LINE_AA)
        cv2.circle(img, (fx, fy), r, (40, 80, 120), max(1, int(3 * s)), cv2.LINE_AA)
        blink = (index % int(max(1, 4 * self.fps))) < max(1, int(0.15 * self.fps))
        for ex in (-0.35, 0.35):
            centre = (fx + int(ex * r), fy - int(0.25 * r))
            if blink:
                cv2.line(img, (centre[0] - int(9 * s), centre[1]), (centre[0] + int(9 * s), centre[1]), (30, 30, 30), max(1, int(3 * s)), cv2.LINE_AA)
            else:
                cv2.circle(img, centre, max(2, int(9 * s)), (30, 30, 30), -1, cv2.LINE_AA)
        cv2.ellipse(img, (fx, fy + int(0.1 * r)), (int(0.5 * r), int(0.4 * r)), 0, 20, 160, (40, 40, 160), max(1, int(4 * s)), cv2.LINE_AA)

        # Text: a title and a running clock, which also makes every frame distinct.
        font = cv2.FONT_HERSHEY_DUPLEX
        cv2.putText(img, "nstcam demo", (int(12 * s), int(40 * s)), font, 1.1 * s, (255, 255, 255), max(1, int(2 * s)), cv2.LINE_AA)
        cv2.putText(img, f"{t:6.2f} s", (w - int(150 * s), h - int(16 * s)), font, 0.8 * s, (255, 255, 255), max(1, int(2 * s)), cv2.LINE_AA)
        return img


def calibration_frames(count: int = 8, shape: tuple[int, int] = (240, 320)) -> list[np.ndarray]:
    """BGR frames of the demo scene spread over its animation: int8 calibration images that exist
    on every machine."""
    h, w = shape
    source = DemoSource(w, h)
    return [source.frame_at(i * 11) for i in range(count)]
