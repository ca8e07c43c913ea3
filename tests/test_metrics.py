"""trainer.metrics' edge figure: one function, two definitions the caller chooses between.

The quality report and the instant styles' report publish the unblurred figure (Sobel on the luma
as it is); the stability report blurs by 1 px first. Both are pinned here to the OpenCV
computation instant styles are calibrated with where torch is absent, so neither can drift.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from nstcam.engines.calibration import edge_correlation as edge_correlation_cv
from trainer.images import rgb_array_to_tensor
from trainer.metrics import EDGE_BLUR_SIGMA, edge_correlation


def picture(h: int = 40, w: int = 56, seed: int = 0) -> np.ndarray:
    """RGB uint8 with shading, boxes and a line: edges of several strengths."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 200 // w, y * 180 // h, np.full_like(x, 90)], -1).astype(np.uint8)
    for _ in range(4):
        x0, y0 = int(rng.integers(0, w - 10)), int(rng.integers(0, h - 10))
        cv2.rectangle(img, (x0, y0), (x0 + int(rng.integers(5, 20)), y0 + int(rng.integers(5, 20))),
                      tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
    cv2.line(img, (0, h // 2), (w - 1, h // 3), (250, 250, 250), 1)
    return img


def opencv_edge_correlation(a: np.ndarray, b: np.ndarray, blur_sigma: float) -> float:
    """The figure computed with OpenCV (nstcam.engines.calibration, which calibrates instant
    styles without torch): Rec. 601 luma, optional Gaussian, Sobel, interior only."""
    return edge_correlation_cv(a.astype(np.float64) / 255, b.astype(np.float64) / 255, blur_sigma)


@pytest.mark.parametrize("blur_sigma", [0.0, EDGE_BLUR_SIGMA])
def test_both_definitions_match_an_independent_computation(blur_sigma: float) -> None:
    photo = picture()
    rng = np.random.default_rng(5)
    stylized = np.clip(photo.astype(np.int16) + rng.integers(-40, 40, photo.shape), 0, 255).astype(np.uint8)
    got = edge_correlation(rgb_array_to_tensor(stylized), rgb_array_to_tensor(photo), blur_sigma=blur_sigma)
    assert got == pytest.approx(opencv_edge_correlation(stylized, photo, blur_sigma), abs=1e-4)
    assert edge_correlation(rgb_array_to_tensor(photo), rgb_array_to_tensor(photo),
                            blur_sigma=blur_sigma) == pytest.approx(1.0, abs=1e-5)


def test_the_blur_forgives_softened_and_displaced_edges_and_the_unblurred_figure_does_not() -> None:
    """Edges a pixel off or softened (as a network's strokes leave them): the stability report's
    blur still finds the structure, the published figure counts it lost (why the two differ)."""
    photo = picture(seed=1)
    clean = rgb_array_to_tensor(photo)
    for changed in (np.roll(photo, (1, 1), (0, 1)), cv2.GaussianBlur(photo, (0, 0), 1.2)):
        out = rgb_array_to_tensor(changed)
        assert edge_correlation(out, clean, blur_sigma=EDGE_BLUR_SIGMA) > \
            edge_correlation(out, clean, blur_sigma=0.0) + 0.15
    band = torch.zeros(photo.shape[:2], dtype=torch.bool)
    band[5:30, 5:40] = True  # a mask keeps the chosen definition
    out = rgb_array_to_tensor(np.roll(photo, (1, 1), (0, 1)))
    assert edge_correlation(out, clean, band, blur_sigma=EDGE_BLUR_SIGMA) > \
        edge_correlation(out, clean, band, blur_sigma=0.0) + 0.15


def test_the_blur_must_be_chosen() -> None:
    x = rgb_array_to_tensor(picture())
    with pytest.raises(TypeError):
        edge_correlation(x, x)  # type: ignore[call-arg]
