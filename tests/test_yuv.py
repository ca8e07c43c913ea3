"""rgb_to_i420: the recorder's RGB -> YUV 4:2:0, against swscale's (what PyAV did before)."""
from __future__ import annotations

import av
import numpy as np
import pytest

from nstcam.live.yuv import rgb_to_i420


def swscale_i420(rgb: np.ndarray) -> np.ndarray:
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(format="yuv420p").to_ndarray()


@pytest.mark.parametrize("w, h", [(320, 240), (322, 242)])  # 121 chroma rows: planes split mid-row
def test_matches_swscale(w: int, h: int) -> None:
    """On a painted-looking picture (smooth colour fields): swscale's chroma filter reaches past
    each 2x2 block, so on pixel noise the two differ by more, both being fair 4:2:0."""
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    rgb = (255 * np.stack([np.sin(5 * x) ** 2, np.cos(3 * y + x) ** 2, x * y], axis=2)).astype(np.uint8)
    got, want = rgb_to_i420(rgb).astype(int), swscale_i420(rgb).astype(int)
    assert got.shape == want.shape == (h * 3 // 2, w)
    assert np.abs(got[:h] - want[:h]).max() <= 1  # luma: the same video-range BT.601 matrix
    chroma = np.abs(got[h:] - want[h:])
    assert chroma.max() <= 2 and chroma.mean() < 0.5


def test_chroma_is_the_mean_of_each_block_not_its_corner() -> None:
    rgb = np.zeros((2, 4, 3), np.uint8)
    rgb[:, :, 2] = [[255, 0, 255, 0], [0, 0, 0, 0]]  # blue in one or two of each 2x2 block's pixels
    rgb[0, 2, 2] = 0
    u = rgb_to_i420(rgb)[2:].reshape(-1)[:2]  # U of the two blocks
    # video-range U of pure blue is 240, of black 128: a quarter blue lands a quarter of the way
    assert list(u) == [128 + round(0.25 * 112), 128]


def test_odd_sides_are_refused() -> None:
    with pytest.raises(ValueError, match="even"):
        rgb_to_i420(np.zeros((3, 4, 3), np.uint8))


def test_a_flipped_view_converts_like_its_copy() -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (4, 6, 3), np.uint8)
    np.testing.assert_array_equal(rgb_to_i420(rgb[:, ::-1]), rgb_to_i420(rgb[:, ::-1].copy()))
