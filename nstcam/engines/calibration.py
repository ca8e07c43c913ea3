"""Choosing an instant style's fine-luma amount without torch: on ONNX Runtime, with OpenCV.

`nstcam.engines.detail.calibrate_amount` chooses the amount from the style's own outputs on a few
probe frames; it needs torch, which a launch that runs ONNX Runtime (most AVX2 CPUs, the first
frames where torch is fastest, the lite bundle) has not imported, and importing it for a dropped
picture costs more than the whole drop may take. Here the same search runs on the frame graph's
output (its amount input set to 0) and the same figures computed with OpenCV: the band (luma
minus its Gaussian, mirrored borders) and the unblurred edge correlation (Sobel magnitudes of the
luma, the outermost pixels left out). The output arrives as uint8, so the two paths can differ
by a grid step where a probe saturates; `tests/test_instant_detail.py` holds them to it.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

from nstcam.engines.instant import DETAIL_AMOUNT  # the least amount calibration gives

DETAIL_MAX = 2.0  # beyond this the band sharpens the photo more than it keeps its structure
DETAIL_STEP = 0.125
# Mean unblurred edge correlation the calibrated amount reaches on the probe frames (the demo
# scene at 224x168, `nstcam.jobs.instant_style.probe_frames`); README "Instant styles" has the
# sweep it was chosen from, on the pack's paintings and the quality report's photos.
PROBE_STRUCTURE = 0.78
DETAIL_SIGMA = 1.5  # px at the processing size: the band holds edges, not shading
LUMA = (0.299, 0.587, 0.114)  # Rec. 601, as the quality report's edge figure


def least_amount(structure: Callable[[float], float], target: float = PROBE_STRUCTURE) -> float:
    """The least amount, from DETAIL_AMOUNT up in DETAIL_STEPs to DETAIL_MAX, whose `structure`
    (the probes' mean edge correlation with that much band) reaches `target`."""
    steps = 0
    while DETAIL_AMOUNT + steps * DETAIL_STEP < DETAIL_MAX and structure(DETAIL_AMOUNT + steps * DETAIL_STEP) < target:
        steps += 1
    return DETAIL_AMOUNT + steps * DETAIL_STEP


def gaussian_taps(sigma: float) -> np.ndarray:
    """A normalised 1-D Gaussian, radius 3 sigma (at least 1): the band's blur."""
    radius = max(1, round(3 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-x * x / (2 * sigma * sigma))
    return taps / taps.sum()


def luma(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB in [0, 1] -> (H, W) Rec. 601 luma, float64."""
    return rgb.astype(np.float64) @ np.array(LUMA)


def luma_band(rgb: np.ndarray, sigma: float = DETAIL_SIGMA) -> np.ndarray:
    """The frame's fine luma, (H, W): its luma minus its Gaussian blur (amount 1)."""
    y = luma(rgb)
    taps = gaussian_taps(sigma)
    if min(y.shape) <= taps.size // 2:  # as the network's band: no reflection possible, no band
        return np.zeros_like(y)
    return y - cv2.sepFilter2D(y, cv2.CV_64F, taps, taps, borderType=cv2.BORDER_REFLECT_101)


def edge_correlation(output: np.ndarray, photo: np.ndarray, blur_sigma: float = 0.0) -> float:
    """`trainer.metrics.edge_correlation` for (H, W, 3) RGB arrays in [0, 1]: the Pearson
    correlation of their luma's Sobel magnitudes (after a Gaussian of `blur_sigma`, if any)."""
    def magnitudes(rgb: np.ndarray) -> np.ndarray:
        y = luma(rgb)
        if blur_sigma > 0:
            y = cv2.GaussianBlur(y, (0, 0), blur_sigma, borderType=cv2.BORDER_REFLECT_101)
        g = np.hypot(cv2.Sobel(y, cv2.CV_64F, 1, 0), cv2.Sobel(y, cv2.CV_64F, 0, 1))
        return g[1:-1, 1:-1].ravel()

    a, b = magnitudes(output), magnitudes(photo)
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def calibrate_outputs(plain: Sequence[np.ndarray], probes: Sequence[np.ndarray]) -> float:
    """The amount for a style whose outputs without the band are `plain` on `probes`, both
    (H, W, 3) RGB in [0, 1] of one size each."""
    runs = [(y.astype(np.float64), luma_band(x)[..., None], x) for y, x in zip(plain, probes)]

    def structure(amount: float) -> float:
        return sum(edge_correlation(np.clip(y + amount * b, 0, 1), x) for y, b, x in runs) / len(runs)

    return least_amount(structure)
