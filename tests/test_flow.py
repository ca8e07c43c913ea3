"""Moving a picture along a flow: every channel in its place, exactly as a remap of each channel."""
from __future__ import annotations

import numpy as np

from nstcam.live.flow import warp


def test_a_three_channel_picture_moves_as_each_channel_alone() -> None:
    rng = np.random.default_rng(1)
    picture = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    flow = rng.normal(0.0, 2.5, (60, 80, 2)).astype(np.float32)
    moved = warp(picture, flow)
    assert moved.shape == picture.shape and moved.dtype == np.uint8
    for c in range(3):
        assert np.array_equal(moved[..., c], warp(np.ascontiguousarray(picture[..., c]), flow))


def test_a_whole_pixel_flow_samples_the_pixel_it_points_at() -> None:
    picture = np.zeros((20, 30, 3), np.uint8)
    picture[5, 10] = (200, 100, 50)
    flow = np.zeros((20, 30, 2), np.float32)
    flow[..., 0] = 3.0  # each pixel takes the one three to its right
    moved = warp(picture, flow)
    assert tuple(moved[5, 7]) == (200, 100, 50)
    assert np.count_nonzero(moved.any(axis=2)) == 1
