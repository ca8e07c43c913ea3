"""Runtime temporal stabilizer: carries the previous stylized frame along the camera's motion.

A feed-forward style network paints every frame from scratch, and its texture changes with every
sub-pixel shift of the input (aliasing in the strided convolutions), so a moving camera makes the
live view boil. `FlowStabilizer` follows the motion instead: it measures optical flow between the
*raw* frames (they are what really moved; the stylized ones would show their own flicker as
motion), warps its previous *output* onto the current frame, and blends that with the new stylized
frame. The blend weight is a per-pixel confidence, so wherever the warp is not trustworthy -- an
occlusion, a newly revealed background, a flow error, a scene cut -- the new stylized frame shows
through at once, which is what keeps moving objects free of trails (an unweighted exponential blend
of past outputs smears them).

Cost: one DIS flow and the confidence at half the stylized size, one remap and one blend at the
stylized size; about 1.0 ms per frame at 320x240 and 3.4 ms at 640x480 (median wall time,
OpenCV's two threads, idle 2-core machine). A forward-backward flow check used to guard the warp
too; on every measured clip (pans of 1-3 px, a zoom, a moving object; three styles; both sizes)
dropping it moved no figure by more than 0.002 for the worse, and it cost a second flow: 1.5 and
5.4-5.8 ms. What it also caught, a cut to a similar-looking scene, the median difference catches.
The carried-over picture follows the new frame's mean colour, measured where the warp is trusted,
half-way each frame (`colour_follow`), so exposure and white-balance changes show within about a
frame instead of lagging; that raised the warp error by at most 0.03 of the unstabilized one.
"""
from __future__ import annotations

import logging
import threading

import cv2
import numpy as np

log = logging.getLogger(__name__)

SOFTEN = 0.7  # Gaussian sigma (flow-size pixels) applied before the raw frames are compared
MIN_FLOW_SIDE = 12  # DIS refuses an image whose longer side is shorter (cv2.error in calc)


class FlowStabilizer:
    """Flow-guided blend of the previous output into each new stylized frame.

    `keep`: the weight of the warped previous output where the warp is fully trusted (the rest is
    the new stylized frame). Higher is steadier but follows real changes the raw-frame check misses
    (slow lighting drifts) more slowly: 0.93 renews 7% of the picture per frame.
    `flow_scale`: the raw frames go to DIS at this fraction of the stylized size. DIS's ultrafast
    preset estimates flow at 1/4 of the size it is given; on half-size frames it is told to stop at
    1/2 instead, which gives the same flow resolution for a quarter of the pyramid's cost.
    `refine_iterations`: DIS variational refinement passes (0 in the ultrafast preset); one makes
    the flow sub-pixel accurate (steadier pans and zooms); more smooth it across a moving object's
    outline, which costs steadiness there, and time.
    `match_tolerance`: grey levels (0-255, on the softened flow-size frames) by which the warped
    raw frame may differ from the current one beyond the frame's typical difference (its noise)
    before the warp is not trusted at all: occlusions and new objects differ by far more.
    `colour_follow`: the fraction of the change in the new stylized frame's mean colour the
    carried-over picture takes each frame. The confidence trusts a frame whose brightness drifts
    by a few grey levels (its floor adapts to the typical difference), so with 0 an exposure ramp
    or a dimming light reached the output only through the blend's 7% a frame: on a ramp of 4
    grey levels a frame the picture lagged by 18. 1 follows at once but lets the network's own
    frame-to-frame colour flicker through; 0.5 lags by 3 and keeps most of the steadiness.
    `cut_fraction`: if fewer than this fraction of pixels can be trusted, or the typical (median)
    pixel differs by more than `match_tolerance` even along the flow, the scene changed: the
    stabilizer resets itself and passes the new stylized frame through. (Optical flow finds some
    match in any textured picture, so a cut to a similar-looking scene can leave a third of the
    pixels matching; its median difference is ten times a continuous shot's.)
    """

    def __init__(
        self,
        keep: float = 0.93,
        flow_scale: float = 0.5,
        refine_iterations: int = 1,
        match_tolerance: float = 12.0,
        colour_follow: float = 0.5,
        cut_fraction: float = 0.3,
    ) -> None:
        if not 0.0 <= keep < 1.0:
            raise ValueError(f"keep must be in [0, 1), got {keep}")
        if not 0.0 < flow_scale <= 1.0:
            raise ValueError(f"flow_scale must be in (0, 1], got {flow_scale}")
        if not 0.0 <= colour_follow <= 1.0:
            raise ValueError(f"colour_follow must be in [0, 1], got {colour_follow}")
        self.keep = keep
        self.flow_scale = flow_scale
        self.match_tolerance = match_tolerance
        self.colour_follow = colour_follow
        self.cut_fraction = cut_fraction
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        if flow_scale <= 0.5:
            self._dis.setFinestScale(1)
        self._dis.setVariationalRefinementIterations(refine_iterations)
        self.cuts = 0  # scene cuts detected since construction, for tests and logs
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next frame passes through unchanged and starts a new history.
        Any thread may call it (a style switch comes from the UI); it waits for the frame being
        processed, if any, so that frame cannot bring the old history back."""
        with self._lock:
            self._prev_small: np.ndarray | None = None
            self._prev_out: np.ndarray | None = None

    def process(self, raw_bgr: np.ndarray, stylized_rgb: np.ndarray) -> np.ndarray:
        """The stabilized RGB uint8 frame, the size of `stylized_rgb`, for the raw frame it came from."""
        for name, frame in (("raw_bgr", raw_bgr), ("stylized_rgb", stylized_rgb)):
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise ValueError(f"{name}: expected a uint8 (H, W, 3) frame, got {frame.dtype} {frame.shape}")
        with self._lock:
            return self._stabilize(raw_bgr, stylized_rgb)

    # ----------------------------------------------------------------------------------------
    def _stabilize(self, raw_bgr: np.ndarray, stylized_rgb: np.ndarray) -> np.ndarray:
        h, w = stylized_rgb.shape[:2]
        small = _gray_at(raw_bgr, self._flow_size(w, h))
        prev_out = self._prev_out
        if prev_out is None or prev_out.shape != stylized_rgb.shape or self._prev_small.shape != small.shape:
            return self._start(small, stylized_rgb)
        back = self._dis.calc(small, self._prev_small, None)  # where each current pixel was before
        weight, static, typical = self._confidence(small, back)
        trusted = weight > 0.5
        if typical > self.match_tolerance or np.count_nonzero(trusted) < self.cut_fraction * weight.size:
            self.cuts += 1
            log.debug("scene cut: %.0f%% of the frame matches the previous one, median difference %.0f",
                      100 * np.mean(trusted), typical)
            return self._start(small, stylized_rgb)
        back = _resize(back, (w, h), cv2.INTER_LINEAR)
        back *= w / small.shape[1]
        warped = _warp(prev_out, back)
        cv2.copyTo(prev_out, _resize(static.view(np.uint8), (w, h), cv2.INTER_NEAREST), warped)
        warped = _follow_mean(warped, stylized_rgb, trusted.view(np.uint8), self.colour_follow)
        weight = _resize(weight, (w, h), cv2.INTER_LINEAR)
        weight *= self.keep
        out = cv2.blendLinear(warped, stylized_rgb, weight, 1.0 - weight)
        self._prev_small, self._prev_out = small, out
        return out

    def _start(self, small: np.ndarray, stylized_rgb: np.ndarray) -> np.ndarray:
        """Begin a new history at this frame, which is returned as is (a copy: we keep it)."""
        out = stylized_rgb.copy()
        self._prev_small, self._prev_out = small, out
        return out

    def _flow_size(self, w: int, h: int) -> tuple[int, int]:
        """Half the stylized size; tiny frames (a 16x12 video) are enlarged to what DIS accepts."""
        scale = max(self.flow_scale, MIN_FLOW_SIDE / max(w, h))
        return max(8, round(w * scale)), max(8, round(h * scale))

    def _confidence(self, small: np.ndarray, back: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Per-pixel trust in carrying the previous output over (0..1), where to carry it unmoved
        instead of along the flow, and the median difference along the flow; all at the flow size
        (a confidence is smooth: at the stylized size it would cost four times as much for nothing).

        Along the flow (`back`, at the flow size), the warped previous raw frame must match the
        current one. Differences up to the frame's typical one (twice the median: sensor noise and
        resampling, whatever the camera) are fully trusted; beyond that, trust falls to zero over
        `match_tolerance` grey levels. The flow is coarse, so it smears a moving object's motion
        onto the still background around it; a webcam's background usually is still, so where the
        unmoved previous frame matches clearly better (by a quarter), that is what is carried."""
        prev = _soften(self._prev_small)
        now = _soften(small)
        mismatch = _difference(_warp(prev, back), now)
        typical = float(np.median(mismatch[::2, ::2]))
        floor = min(2.0 * typical + 1.0, self.match_tolerance)
        weight = 1.0 - (mismatch - floor) / self.match_tolerance
        still = 1.0 - (_difference(prev, now) - floor) / self.match_tolerance
        static = still > weight + 0.25
        np.copyto(weight, still, where=static)
        np.clip(weight, 0.0, 1.0, out=weight)
        return weight, static, typical


def _warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """`image` sampled at each pixel's position plus `flow` (float32 (H, W, 2), image pixels)."""
    return cv2.remap(image, flow, None, cv2.INTER_LINEAR | cv2.WARP_RELATIVE_MAP, borderMode=cv2.BORDER_REPLICATE)


def _follow_mean(past: np.ndarray, now: np.ndarray, trusted: np.ndarray, fraction: float) -> np.ndarray:
    """`past` shifted per channel by `fraction` of the way to `now`'s mean colour, both measured
    where the warp is trusted (`trusted`, a uint8 mask at the flow size, where they are compared):
    something new in view (a hand, a person walking in) changes `now`'s mean over the whole frame,
    and the untouched background must not take that change."""
    size = (max(1, trusted.shape[1] // 4), max(1, trusted.shape[0] // 4))  # a sample is plenty for a mean
    mask = _resize(trusted, size, cv2.INTER_NEAREST)
    now_mean, past_mean = (cv2.mean(_resize(img, size, cv2.INTER_NEAREST), mask)[:3] for img in (now, past))
    offset = [fraction * (n - p) for n, p in zip(now_mean, past_mean)]
    return cv2.add(past, (*offset, 0.0))


def _soften(gray: np.ndarray) -> np.ndarray:
    """Blurred a little, so that the resampling blur of a sub-pixel warp does not read as a
    mismatch along every edge (without it, a slow pan loses the history on all its edges), and
    sensor noise averages out. More blur also hides the misalignment next to a moving object's
    outline, which is what ghosting is made of: sigma 0.7 measured best for both."""
    return cv2.GaussianBlur(gray, (0, 0), SOFTEN)


def _difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return cv2.absdiff(a, b).astype(np.float32)


def _gray_at(bgr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 grey (what DIS takes) at `size` (w, h): area-averaged when shrinking, which also
    lowers the sensor noise."""
    shrink = size[0] < bgr.shape[1]
    return _resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), size, cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _resize(img: np.ndarray, size: tuple[int, int], interpolation: int) -> np.ndarray:
    if (img.shape[1], img.shape[0]) == size:
        return img
    return cv2.resize(img, size, interpolation=interpolation)
