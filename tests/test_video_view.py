"""The video area paints the frame it was given: colours in order, aspect kept, the camera beside
the stylized frame in comparison mode, and a frame larger than the view shrunk to fit."""
from __future__ import annotations

import numpy as np
import pytest

from nstcam.ui.video_view import BACKGROUND, VideoView


def quadrants(h: int, w: int) -> np.ndarray:
    """RGB: red top-left, green top-right, blue bottom-left, white bottom-right."""
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[: h // 2, : w // 2] = (255, 0, 0)
    rgb[: h // 2, w // 2:] = (0, 255, 0)
    rgb[h // 2:, : w // 2] = (0, 0, 255)
    rgb[h // 2:, w // 2:] = (255, 255, 255)
    return rgb


def colour_at(view: VideoView, x: int, y: int) -> tuple[int, int, int]:
    image = view.grab().toImage()
    c = image.pixelColor(x, y)
    return c.red(), c.green(), c.blue()


@pytest.fixture
def view(qtbot) -> VideoView:
    v = VideoView()
    qtbot.addWidget(v)
    v.resize(800, 400)
    return v


@pytest.mark.parametrize("frame_size", [(120, 160), (960, 1280)])  # enlarged, and shrunk to fit
def test_the_frame_fills_the_view_height_with_its_colours_in_place(view: VideoView, frame_size) -> None:
    view.set_frame(quadrants(*frame_size))
    # 4:3 into 800x400: 533x400, centred, dark bars left and right
    assert colour_at(view, 400 - 133, 100) == (255, 0, 0)
    assert colour_at(view, 400 + 133, 100) == (0, 255, 0)
    assert colour_at(view, 400 - 133, 300) == (0, 0, 255)
    assert colour_at(view, 400 + 133, 300) == (255, 255, 255)
    background = (BACKGROUND.red(), BACKGROUND.green(), BACKGROUND.blue())
    assert colour_at(view, 60, 200) == background and colour_at(view, 740, 200) == background


def test_comparison_shows_the_camera_left_and_the_stylized_frame_right(view: VideoView) -> None:
    view.set_compare(True)
    raw_bgr = np.zeros((120, 160, 3), np.uint8)
    raw_bgr[:] = (255, 0, 0)  # blue, in OpenCV's order
    stylized = np.zeros((120, 160, 3), np.uint8)
    stylized[:] = (255, 128, 0)  # orange
    view.set_frame(stylized, raw_bgr)
    assert colour_at(view, 200, 200) == (0, 0, 255)
    assert colour_at(view, 600, 200) == (255, 128, 0)
    view.set_compare(False)
    assert colour_at(view, 400, 200) == (255, 128, 0)
