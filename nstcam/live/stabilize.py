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
stylized size: 2.8 ms a 320x240 frame and 9.5 ms a 640x480 one on one core of the 2-core test
machine (DIS about 0.9 ms of the first; `nstcam.measure.stability` times it). One flow, not a
forward-backward pair: the median difference already catches what the second flow caught. The
carried-over picture follows the new frame's mean colour half-way each frame (`colour_follow`),
so exposure and white-balance changes show within about a frame instead of lagging. Figures and
history: docs/design-notes.md.
"""
from __future__ import annotations

import logging
import threading

import cv2
import numpy as np

from nstcam.live.flow import RawFlow
from nstcam.resample import resize

log = logging.getLogger(__name__)


class FlowStabilizer:
    """Flow-guided blend of the previous output into each new stylized frame.

    `keep`: the weight of the warped previous output where the warp is fully trusted (the rest is
    the new stylized frame). Higher is steadier but follows real changes the raw-frame check misses
    (slow lighting drifts) more slowly: 0.93 renews 7% of the picture per frame.
    `flow_scale`, `refine_iterations`, `match_tolerance`, `cut_fraction`: the raw frames' flow and
    how far it is trusted (nstcam.live.flow.RawFlow); on a scene cut the stabilizer resets itself
    and passes the new stylized frame through.
    `colour_follow`: the fraction of the change in the new stylized frame's mean colour the
    carried-over picture takes each frame. The confidence trusts a slow brightness drift, so
    without it an exposure ramp reaches the output only through the blend; 1 follows at once but
    lets the network's own colour flicker through, 0.5 is the compromise (docs/design-notes.md).
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
        if not 0.0 <= colour_follow <= 1.0:
            raise ValueError(f"colour_follow must be in [0, 1], got {colour_follow}")
        self.keep = keep
        self.colour_follow = colour_follow
        self.flow = RawFlow(flow_scale, refine_iterations, match_tolerance, cut_fraction)
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
        small = self.flow.gray(raw_bgr, (w, h))
        prev_out = self._prev_out
        if prev_out is None or prev_out.shape != stylized_rgb.shape or self._prev_small.shape != small.shape:
            return self._start(small, stylized_rgb)
        back = self.flow.back(small, self._prev_small)  # where each current pixel was before
        weight, static, typical = self.flow.confidence(self._prev_small, small, back)
        trusted = weight > 0.5
        if self.flow.is_cut(trusted, typical):
            self.cuts += 1
            log.debug("scene cut: %.0f%% of the frame matches the previous one, median difference %.0f",
                      100 * np.mean(trusted), typical)
            return self._start(small, stylized_rgb)
        warped = self.flow.carry(prev_out, back, static)
        warped = _follow_mean(warped, stylized_rgb, trusted.view(np.uint8), self.colour_follow)
        weight = resize(weight, (w, h), cv2.INTER_LINEAR)
        weight *= self.keep
        out = cv2.blendLinear(warped, stylized_rgb, weight, 1.0 - weight)
        self._prev_small, self._prev_out = small, out
        return out

    def _start(self, small: np.ndarray, stylized_rgb: np.ndarray) -> np.ndarray:
        """Begin a new history at this frame, which is returned as is (a copy: we keep it)."""
        out = stylized_rgb.copy()
        self._prev_small, self._prev_out = small, out
        return out


def _follow_mean(past: np.ndarray, now: np.ndarray, trusted: np.ndarray, fraction: float) -> np.ndarray:
    """`past` shifted per channel by `fraction` of the way to `now`'s mean colour, both measured
    where the warp is trusted (`trusted`, a uint8 mask at the flow size, where they are compared):
    something new in view (a hand, a person walking in) changes `now`'s mean over the whole frame,
    and the untouched background must not take that change."""
    size = (max(1, trusted.shape[1] // 4), max(1, trusted.shape[0] // 4))  # a sample is plenty for a mean
    mask = resize(trusted, size, cv2.INTER_NEAREST)
    now_mean, past_mean = (cv2.mean(resize(img, size, cv2.INTER_NEAREST), mask)[:3] for img in (now, past))
    return shift_levels(past, [fraction * (n - p) for n, p in zip(now_mean, past_mean)])


def shift_levels(picture: np.ndarray, offset: list[float]) -> np.ndarray:
    """`picture` (uint8, 3 channels) plus `offset` per channel, rounded and saturated as cv2.add
    does it, through a table: cv2.add with a scalar takes 0.95 ms a 320x240 frame, this 0.3 ms."""
    levels = np.arange(256, dtype=np.float64)[:, None] + np.asarray(offset, np.float64)
    return cv2.LUT(picture, np.clip(np.rint(levels), 0, 255).astype(np.uint8).reshape(256, 1, 3))
