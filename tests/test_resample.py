"""The one resizing rule: area-averaged when shrinking, interpolated when enlarging."""
from __future__ import annotations

import cv2
import numpy as np

from nstcam.resample import resize_to


def test_shrinking_averages_every_pixel_it_covers() -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    block_means = noise.reshape(12, 4, 16, 4, 3).mean(axis=(1, 3))
    small = resize_to(noise, (16, 12))
    assert small.shape == (12, 16, 3)
    assert np.abs(small - block_means).max() <= 0.5 + 1e-6  # a bilinear shrink samples a few: tens off


def test_enlarging_interpolates_with_the_method_asked_for() -> None:
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 256, (12, 16), dtype=np.uint8)
    for method in (cv2.INTER_LINEAR, cv2.INTER_CUBIC):
        expected = cv2.resize(picture, (64, 48), interpolation=method)
        assert np.array_equal(resize_to(picture, (64, 48), enlarge=method), expected)
    assert not np.array_equal(resize_to(picture, (64, 48)), resize_to(picture, (64, 48), enlarge=cv2.INTER_CUBIC))


def test_a_picture_already_at_the_size_is_returned_as_it_is() -> None:
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    assert resize_to(picture, (16, 12)) is picture
