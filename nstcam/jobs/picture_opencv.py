"""Pictures read with OpenCV, where Pillow is not installed (the lite bundle).

The same pictures and the same one-line refusals as the Pillow reader (nstcam.jobs.instant_style):
the size is read from the file's header before anything is decoded (PNG, JPEG, GIF, BMP, WebP;
OpenCV's own limit of 2^30 pixels guards the other formats), so a decompression bomb costs nothing;
JPEGs are decoded at a reduced scale when they are much larger than the style needs, with their
EXIF orientation; CMYK becomes RGB, 16-bit and float pictures are scaled to 8 bits, an animated
GIF gives its first frame and transparency is flattened onto white.
"""
from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

REDUCED_JPEG = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, GIF, BMP, WebP or JPEG header; None for other or damaged files."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            return struct.unpack(">II", data[16:24])
        if data.startswith(b"GIF8"):
            return struct.unpack("<HH", data[6:10])
        if data.startswith(b"BM"):
            w, h = struct.unpack("<ii", data[18:26])
            return w, abs(h)
        if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
            return _webp_size(data)
        if data.startswith(b"\xff\xd8"):
            return _jpeg_size(data)
    except struct.error:  # a header cut short: the decoder will say it cannot read the file
        return None
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    kind = data[12:16]
    if kind == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if kind == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if kind == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start of frame
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    return None


def read_with_opencv(path: Path) -> np.ndarray:
    """The picture at `path` as RGB uint8 (H, W, 3), not yet cropped or scaled; PictureError (one
    line) for a file that is no picture or one of a size no style can come from. A JPEG is decoded
    at the smallest scale that keeps its short side at least STYLE_SIDE."""
    from nstcam.jobs.instant_style import STYLE_SIDE, PictureError, check_picture_size, unreadable

    data = np.fromfile(path, np.uint8)  # not cv2.imread: any file name, and the header is read first
    size = header_size(data[:1 << 20].tobytes())  # a JPEG's size may follow its EXIF and ICC segments
    if size is not None:
        check_picture_size(path.name, size)
    flags = cv2.IMREAD_UNCHANGED  # keeps alpha and 16 bits
    if data[:2].tobytes() == b"\xff\xd8":  # JPEG: colour (CMYK converted), EXIF orientation applied
        short = min(size) if size else 0
        flags = next((f for k, f in REDUCED_JPEG if short // k >= STYLE_SIDE), cv2.IMREAD_COLOR)
    try:
        image = cv2.imdecode(data, flags)
    except cv2.error as exc:
        if "MAX_IMAGE_PIXELS" in str(exc):
            raise PictureError(f"{path.name}: too large to decode safely; use a smaller picture") from None
        raise unreadable(path, exc.err or "OpenCV cannot decode it") from None
    if image is None:
        raise unreadable(path, "OpenCV cannot decode it")
    check_picture_size(path.name, (image.shape[1], image.shape[0]))
    return to_rgb8(image)


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """A decoded OpenCV image (grey, BGR or BGRA; 8, 16 bits or float) as RGB uint8, transparent
    parts on white."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)  # the high byte, as Pillow keeps it
    elif image.dtype != np.uint8:
        image = image.astype(np.float32)
        top = max(1.0, float(image.max(initial=0.0)))
        image = np.clip(image * 255.0 / top + 0.5, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        alpha = image[..., 3:].astype(np.float32) / 255.0
        flat = image[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        return cv2.cvtColor(np.clip(flat + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_BGR2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
