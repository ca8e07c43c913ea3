"""Optical flow between raw camera frames, and how far a picture moved along it can be trusted.

Shared by the temporal stabilizer (nstcam.live.stabilize: the previous output carried onto the
new frame) and the in-between frames (nstcam.live.inbetween: the latest stylized frame carried
onto camera frames the engine had no time for). Flow is measured between the *raw* frames: they
are what really moved; stylized frames would show their own flicker as motion.

`RawFlow.back` is DIS optical flow at a fraction of the stylized size; `confidence` says, per
pixel, whether the raw frame moved along it matches the current one (occlusions, newly revealed
ground and flow errors do not), and `is_cut` whether the scene changed altogether.
"""
from __future__ import annotations

import cv2
import numpy as np

from nstcam.resample import resize, resize_to

SOFTEN = 0.7  # Gaussian sigma (flow-size pixels) applied before the raw frames are compared
MIN_FLOW_SIDE = 12  # DIS refuses an image whose longer side is shorter (cv2.error in calc)


class RawFlow:
    """DIS flow between grey raw frames at `flow_scale` of the stylized size, and its confidence.

    `flow_scale`: DIS's ultrafast preset estimates flow at 1/4 of the size it is given; on
    half-size frames it is told to stop at 1/2 instead, which gives the same flow resolution for a
    quarter of the pyramid's cost. `refine_iterations`: DIS variational refinement passes (0 in
    the ultrafast preset); one makes the flow sub-pixel accurate (steadier pans and zooms); more
    smooth it across a moving object's outline. `match_tolerance`: grey levels (0-255, on the
    softened flow-size frames) by which the warped raw frame may differ from the current one
    beyond the frame's typical difference (its noise) before the warp is not trusted at all.
    `cut_fraction`: if fewer than this fraction of pixels can be trusted, or the typical (median)
    pixel differs by more than `match_tolerance` even along the flow, the scene changed.
    One instance serves one thread at a time (DIS keeps buffers).
    """

    def __init__(self, flow_scale: float = 0.5, refine_iterations: int = 1, match_tolerance: float = 12.0,
                 cut_fraction: float = 0.3) -> None:
        if not 0.0 < flow_scale <= 1.0:
            raise ValueError(f"flow_scale must be in (0, 1], got {flow_scale}")
        self.flow_scale = flow_scale
        self.match_tolerance = match_tolerance
        self.cut_fraction = cut_fraction
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        if flow_scale <= 0.5:
            self._dis.setFinestScale(1)
        self._dis.setVariationalRefinementIterations(refine_iterations)

    def gray(self, raw_bgr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """The raw frame as DIS takes it, for a stylized picture of `size` (w, h): at `flow_scale`
        of it, tiny frames (a 16x12 video) enlarged to what DIS accepts."""
        return gray_at(raw_bgr, self.gray_size(size))

    def gray_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """(w, h) of `gray` for a stylized picture of `size` (w, h)."""
        w, h = size
        scale = max(self.flow_scale, MIN_FLOW_SIDE / max(w, h))
        return max(8, round(w * scale)), max(8, round(h * scale))

    def back(self, small: np.ndarray, before: np.ndarray) -> np.ndarray:
        """Flow at the flow size: where each pixel of `small` was in `before`."""
        return self._dis.calc(small, before, None)

    def confidence(self, before: np.ndarray, small: np.ndarray,
                   back: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Per-pixel trust in carrying a picture of `before` over to `small` along `back` (0..1),
        where to carry it unmoved instead of along the flow, and the median difference along the
        flow; all at the flow size (a confidence is smooth: at the stylized size it would cost
        four times as much for nothing).

        Along the flow, the warped `before` must match `small`. Differences up to the frame's
        typical one (twice the median: sensor noise and resampling, whatever the camera) are fully
        trusted; beyond that, trust falls to zero over `match_tolerance` grey levels. The flow is
        coarse, so it smears a moving object's motion onto the still background around it; a
        webcam's background usually is still, so where the unmoved `before` matches clearly better
        (by a quarter), that is what is carried."""
        prev = _soften(before)
        now = _soften(small)
        mismatch = _difference(warp(prev, back), now)
        typical = float(np.median(mismatch[::2, ::2]))
        floor = min(2.0 * typical + 1.0, self.match_tolerance)
        weight = 1.0 - (mismatch - floor) / self.match_tolerance
        still = 1.0 - (_difference(prev, now) - floor) / self.match_tolerance
        static = still > weight + 0.25
        np.copyto(weight, still, where=static)
        np.clip(weight, 0.0, 1.0, out=weight)
        return weight, static, typical

    def is_cut(self, trusted: np.ndarray, typical: float) -> bool:
        """Whether the scene changed: too few `trusted` pixels, or a typical pixel far off even
        along the flow. (Optical flow finds some match in any textured picture, so a cut to a
        similar-looking scene can leave a third of the pixels matching; its median difference is
        ten times a continuous shot's.)"""
        return typical > self.match_tolerance or np.count_nonzero(trusted) < self.cut_fraction * trusted.size

    def carry(self, picture: np.ndarray, back: np.ndarray, static: np.ndarray) -> np.ndarray:
        """`picture` (at the stylized size) moved along `back` (at the flow size), unmoved where
        `static`."""
        h, w = picture.shape[:2]
        flow = resize(back, (w, h), cv2.INTER_LINEAR)
        flow *= w / back.shape[1]
        moved = warp(picture, flow)
        cv2.copyTo(picture, resize(static.view(np.uint8), (w, h), cv2.INTER_NEAREST), moved)
        return moved


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """`image` sampled at each pixel's position plus `flow` (float32 (H, W, 2), image pixels).

    A 3-channel picture is moved with a fourth channel added: OpenCV's remap has vector code for
    1, 2 and 4 channels but not 3, and the detour gives the same pixels in about half the time
    (320x240: 0.70 against 0.38 ms; 1280x720: 9.4 against 5.3 ms)."""
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(_remap(cv2.cvtColor(image, cv2.COLOR_RGB2RGBA), flow), cv2.COLOR_RGBA2RGB)
    return _remap(image, flow)


def _remap(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    return cv2.remap(image, flow, None, cv2.INTER_LINEAR | cv2.WARP_RELATIVE_MAP, borderMode=cv2.BORDER_REPLICATE)


def _soften(gray: np.ndarray) -> np.ndarray:
    """Blurred a little, so that the resampling blur of a sub-pixel warp does not read as a
    mismatch along every edge (without it, a slow pan loses the history on all its edges), and
    sensor noise averages out. More blur also hides the misalignment next to a moving object's
    outline, which is what ghosting is made of: sigma 0.7 measured best for both."""
    return cv2.GaussianBlur(gray, (0, 0), SOFTEN)


def _difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return cv2.absdiff(a, b).astype(np.float32)


def gray_at(bgr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 grey (what DIS takes) at `size` (w, h): area-averaged when shrinking, which also
    lowers the sensor noise."""
    return resize_to(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), size)
