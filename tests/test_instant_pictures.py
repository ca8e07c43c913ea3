"""Bad pictures become a one-line reason or a sensible style, never a traceback, and the styles
folder never holds half a style. One generated picture per kind."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from nstcam.engines.instant import load_instant
from nstcam.jobs import instant_style
from nstcam.jobs.instant_style import MIN_SIDE, STYLE_SIDE, PictureError, read_picture, style_from_picture


@pytest.fixture(params=["pillow", "opencv"], autouse=True)
def reader(request, monkeypatch) -> str:
    """Every case with both readers: Pillow, and OpenCV as where Pillow is not installed (the lite
    bundle: nstcam.jobs.picture_opencv)."""
    if request.param == "opencv":
        monkeypatch.setattr(instant_style, "_pillow", lambda: None)  # as if Pillow were not installed
    return request.param


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "styles"


def refused(picture: Path, folder: Path, reason: str) -> str:
    with pytest.raises(PictureError) as info:
        style_from_picture(picture, folder)
    message = str(info.value)
    assert "\n" not in message and picture.name in message and reason in message
    assert not folder.exists() or list(folder.iterdir()) == []  # nothing written, not even a temp file
    return message


def made(picture: Path, folder: Path) -> np.ndarray:
    """The picture as the style sees it, after checking a complete style file was written."""
    style = style_from_picture(picture, folder)
    assert [p.name for p in folder.iterdir()] == [style.path.name]
    assert load_instant(style.path).code.shape == (8, 64)
    return read_picture(picture)


def test_not_an_image(tmp_path: Path, folder: Path) -> None:
    picture = tmp_path / "notes.jpg"
    picture.write_text("shopping list: eggs, milk")
    message = refused(picture, folder, "not a picture nstcam can read")
    assert "JPEG, PNG" in message


def test_a_folder_or_a_missing_file(tmp_path: Path, folder: Path) -> None:
    refused(tmp_path, folder, "is a folder")
    refused(tmp_path / "gone.png", folder, "no such file")


def test_one_by_one_pixel(tmp_path: Path, folder: Path) -> None:
    picture = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (200, 10, 10)).save(picture)
    refused(picture, folder, f"1x1 pixels is too small to take a style from; use a picture at least {MIN_SIDE}")


def test_fifty_thousand_pixels_wide(tmp_path: Path, folder: Path) -> None:
    """A strip 50,000 px wide: its centre, cropped to 4:1, then scaled, is the style."""
    picture = tmp_path / "strip.png"
    strip = np.zeros((40, 50_000, 3), np.uint8)
    strip[:, :, 0] = (np.arange(50_000) % 256).astype(np.uint8)
    Image.fromarray(strip).save(picture)
    rgb = made(picture, folder)
    assert rgb.shape == (40, 160, 3)
    np.testing.assert_array_equal(rgb[0, :, 0], strip[0, 24_920:25_080, 0])


def test_too_many_pixels_to_decode(tmp_path: Path, folder: Path) -> None:
    """A header claiming 50,000 x 50,000 (a decompression bomb) is refused before decoding."""
    picture = tmp_path / "bomb.png"
    picture.write_bytes(png_header_only(50_000, 50_000))
    refused(picture, folder, "too large")
    picture.write_bytes(png_header_only(50_000, 1_700))  # under PIL's own limit, over ours
    refused(picture, folder, "50000x1700 pixels is too large")


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height RGB pixels, with no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_cmyk(tmp_path: Path, folder: Path) -> None:
    picture = tmp_path / "print.jpg"
    Image.new("CMYK", (64, 48), (0, 255, 255, 0)).save(picture)  # pure red in print colours
    rgb = made(picture, folder)
    assert rgb[..., 0].mean() > 230 and rgb[..., 1:].mean() < 25


def test_sixteen_bit(tmp_path: Path, folder: Path) -> None:
    colour = tmp_path / "deep.png"
    bgr = np.zeros((48, 64, 3), np.uint16)
    bgr[..., 2], bgr[..., 1] = 60_000, 20_000
    cv2.imwrite(str(colour), bgr)
    assert made(colour, folder)[0, 0].tolist() == pytest.approx([234, 78, 0], abs=1)  # PIL keeps the high byte
    grey = tmp_path / "grey.png"
    cv2.imwrite(str(grey), np.full((48, 64), 30_000, np.uint16))  # opens as 16-bit "I;16"
    assert tuple(read_picture(grey)[0, 0]) == (117, 117, 117)  # scaled, not clipped to white


def test_animated_gif_uses_its_first_frame(tmp_path: Path, folder: Path) -> None:
    picture = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (64, 48), c) for c in ((250, 0, 0), (0, 0, 250), (0, 250, 0))]
    frames[0].save(picture, save_all=True, append_images=frames[1:], duration=100, loop=0)
    rgb = made(picture, folder)
    assert rgb[..., 0].mean() > 240 and rgb[..., 2].mean() < 10


def test_transparent_png_is_flattened_on_white(tmp_path: Path, folder: Path) -> None:
    picture = tmp_path / "logo.png"
    rgba = np.zeros((48, 64, 4), np.uint8)  # fully transparent black ...
    rgba[10:30, 10:30] = (0, 0, 200, 255)  # ... around an opaque blue square
    Image.fromarray(rgba, "RGBA").save(picture)
    rgb = made(picture, folder)
    assert tuple(rgb[0, 0]) == (255, 255, 255) and tuple(rgb[20, 20]) == (0, 0, 200)


def test_large_pictures_are_encoded_at_the_style_size(tmp_path: Path) -> None:
    picture = tmp_path / "big.jpg"
    Image.new("RGB", (2000, 1000), (10, 120, 200)).save(picture)
    assert read_picture(picture).shape == (STYLE_SIDE, 2 * STYLE_SIDE, 3)


def test_an_unwritable_styles_folder_is_an_os_error_and_leaves_nothing(tmp_path: Path) -> None:
    picture = tmp_path / "fine.png"
    Image.new("RGB", (64, 48), (10, 120, 200)).save(picture)
    blocker = tmp_path / "styles"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(OSError):
        style_from_picture(picture, blocker)
    assert blocker.read_text() == "a file where the folder should be"


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".webp", ".gif"])
def test_the_opencv_reader_finds_the_size_in_the_header(tmp_path: Path, suffix: str) -> None:
    """Without Pillow the size is read before decoding, so a bomb of any of these costs nothing."""
    from nstcam.jobs.picture_opencv import header_size

    picture = tmp_path / f"p{suffix}"
    Image.new("RGB", (64, 48), (10, 120, 200)).save(picture)
    assert header_size(picture.read_bytes()) == (64, 48)
    if suffix == ".webp":  # the lossless and extended WebP headers too
        Image.new("RGBA", (70, 30), (1, 2, 3, 4)).save(picture, lossless=True)
        assert header_size(picture.read_bytes()) == (70, 30)
    assert header_size(b"shopping list") is None and header_size(picture.read_bytes()[:8]) is None
