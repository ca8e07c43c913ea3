"""The figures for how steady a stylized clip is: warp error along the true motion, guarded by the
input's warp error, the style's strength and the edge alignment (see the package's docstring)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from nstcam.measure.stability.clips import Clip, Motion
from trainer import metrics
from trainer.images import rgb_array_to_tensor

BAND_RADIUS = 12  # half-width of the band around a moving object, in pixels at the clip's size
WARP_GOAL = 1 / 3  # warp error at most this fraction of the baseline's ...
STRENGTH_GOAL = 0.85  # ... with strength at least this fraction of the baseline's ...
EDGE_GOAL = 0.95  # ... and edge alignment (whole frame and band) at least this fraction


def motion_at(motion: Motion, size: tuple[int, int], clip_size: tuple[int, int]) -> Motion:
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
        m = motion_at(motion, (now.shape[1], now.shape[0]), clip_size)
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
    """Mean edge correlation (`trainer.metrics.edge_correlation`, after its 1 px blur: structure, not
    a resampled frame's softness) of the output with the *current* input (inside `masks` if given,
    else the whole frame), from the second frame on (the first has no past to ghost). Trails and
    lag put edges where the current input has none and lower it."""
    scores = []
    for t in range(1, len(outputs)):
        out = outputs[t]
        band = None if masks is None else torch.from_numpy(_band(masks[t], out.shape))
        scores.append(metrics.edge_correlation(rgb_array_to_tensor(out),
                                               rgb_array_to_tensor(_as_rgb_at(frames_bgr[t], out.shape)), band,
                                               blur_sigma=metrics.EDGE_BLUR_SIGMA))
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
