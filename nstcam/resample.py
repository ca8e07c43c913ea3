"""Resizing a picture to another size, one rule for the whole app.

Shrinking averages the source pixels each output pixel covers (`INTER_AREA`): a bilinear shrink
samples a few of them and aliases (stripes and textures shimmer as the camera moves, sensor noise
stays). Enlarging has nothing to average, and bilinear is the cheap smooth choice for frames;
photos that are looked at (the scene set, the stability tool's clips) enlarge with bicubic.
"""
from __future__ import annotations

import cv2
import numpy as np


def resize_to(image: np.ndarray, size: tuple[int, int], enlarge: int = cv2.INTER_LINEAR) -> np.ndarray:
    """`image` at `size` (w, h): area-averaged when it gets narrower, else interpolated with
    `enlarge`; `image` itself when it already has that size."""
    return resize(image, size, cv2.INTER_AREA if size[0] < image.shape[1] else enlarge)


def resize(image: np.ndarray, size: tuple[int, int], interpolation: int) -> np.ndarray:
    """`image` at `size` (w, h) with the `interpolation` asked for (masks and weights have their
    own needs); `image` itself when it already has that size."""
    if (image.shape[1], image.shape[0]) == size:
        return image
    return cv2.resize(image, size, interpolation=interpolation)
