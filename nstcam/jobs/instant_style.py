"""Any picture becomes a style in about a second: read it, encode it with MicroAST, save it.

The picture is read defensively (the user may drop anything on the window): a file that is no
image, a picture too small to hold a style or too large to decode becomes `PictureError` with one
line naming the file and what to do; odd but usable pictures are made sensible (CMYK and 16-bit
converted, an animated GIF's first frame, transparency flattened onto white, a panorama's centre
cropped to at most 4:1). Pillow reads them where it is installed, OpenCV where it is not (the lite
bundle: nstcam.jobs.picture_opencv), with the same refusals. The style file is written atomically
into the styles folder, so the folder never holds half a style. How much of the frame's fine luma
the style adds back is calibrated for the painting here, on frames of the demo scene
(`nstcam.engines.detail`; it needs torch: without it the style keeps the default amount).
"""
from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable
from pathlib import Path

from typing import TYPE_CHECKING

import cv2
import numpy as np

from nstcam.engines.instant import SUFFIX, InstantStyle, StyleCode, first_line, save_instant

if TYPE_CHECKING:
    import torch
    from PIL import Image

log = logging.getLogger(__name__)

STYLE_SIDE = 384  # short side the painting is encoded at (edges and palette barely change 192-512)
MIN_SIDE = 16  # below this a picture holds no texture to take a style from
MAX_ASPECT = 4.0  # longer pictures are centre-cropped: a panorama's strip is still its style
MAX_PIXELS = 80_000_000  # below PIL's decompression-bomb warning; more would need gigabytes
THUMBNAIL_SIDE = 128
PROBE_SIZE = (224, 168)  # the demo scene (half the pixels of 320x240 predicted the photos as well) ...
PROBE_MOMENTS = (0, 270, 540)  # ... at three moments (frames at 30 fps: 0, 9 and 18 s)
PICTURE_TYPES = ("*.jpg", "*.jpeg", "*.png", "*.bmp", "*.gif", "*.tif", "*.tiff", "*.webp")


class PictureError(ValueError):
    """A picture cannot become a style; the message is one line naming the file and why."""


def read_picture(path: str | Path) -> np.ndarray:
    """The picture at `path` as RGB uint8 (H, W, 3), short side at most STYLE_SIDE; PictureError.
    Read with Pillow where it is installed, else with OpenCV (nstcam.jobs.picture_opencv)."""
    path = Path(path)
    if path.is_dir():
        raise PictureError(f"{path}: is a folder; choose a picture file (JPEG, PNG, ...)")
    Image = _pillow()
    if Image is None:
        return _read_with_opencv(path)
    try:
        with Image.open(path) as img:
            check_picture_size(path.name, img.size)
            if img.format == "JPEG":
                img.draft("RGB", (STYLE_SIDE, STYLE_SIDE))  # decode big JPEGs at reduced scale
            img.seek(0)  # an animated GIF or WebP: its first frame
            img.load()
            return picture_array(img)
    except FileNotFoundError:
        raise PictureError(f"{path}: no such file") from None
    except PictureError:
        raise
    except Image.DecompressionBombError:
        raise PictureError(f"{path.name}: too large to decode safely; use a smaller picture") from None
    except (Image.UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise unreadable(path, first_line(exc)) from None


def _pillow():
    """Pillow's Image module, or None where Pillow is not installed (the lite bundle)."""
    try:
        from PIL import Image  # only where pictures are read
    except ImportError:
        return None
    return Image


def _read_with_opencv(path: Path) -> np.ndarray:
    from nstcam.jobs.picture_opencv import read_with_opencv

    try:
        rgb = read_with_opencv(path)
    except FileNotFoundError:
        raise PictureError(f"{path}: no such file") from None
    except OSError as exc:
        raise unreadable(path, first_line(exc)) from None
    left, top, right, bottom = crop_box(rgb.shape[1], rgb.shape[0])
    rgb = rgb[top:bottom, left:right]
    scale = STYLE_SIDE / min(rgb.shape[:2])
    if scale < 1:
        size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb)


def unreadable(path: Path, reason: str) -> PictureError:
    """The one line for a file that is no picture either reader can decode."""
    return PictureError(f"{path.name}: not a picture nstcam can read ({reason}); "
                        "use a JPEG, PNG, BMP, GIF, TIFF or WebP file")


def picture_array(img: Image.Image) -> np.ndarray:
    """A decoded PIL image (any mode) as the RGB uint8 array a style is made from."""
    from PIL import Image, ImageOps

    check_picture_size("the picture", img.size)
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        arr = np.asarray(img, dtype=np.float32)
        top = 65535.0 if img.mode != "F" else max(1.0, float(arr.max(initial=0.0)))
        img = Image.fromarray(np.clip(arr * 255.0 / top + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)  # transparent parts: white paper
    img = img.convert("RGB")
    img = img.crop(crop_box(*img.size))
    scale = STYLE_SIDE / min(img.size)
    if scale < 1:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.LANCZOS)
    return np.asarray(img, np.uint8)


def check_picture_size(name: str, size: tuple[int, int]) -> None:
    """PictureError for a picture too small to hold a style or too large to decode safely."""
    w, h = size
    if min(w, h) < MIN_SIDE:
        raise PictureError(f"{name}: {w}x{h} pixels is too small to take a style from; "
                           f"use a picture at least {MIN_SIDE} pixels on each side")
    if w * h > MAX_PIXELS:
        raise PictureError(f"{name}: {w}x{h} pixels is too large to decode safely; use a smaller picture")


def crop_box(w: int, h: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a w x h picture's centre, at most MAX_ASPECT long."""
    long_max = int(MAX_ASPECT * min(w, h))
    if w > long_max:
        return (w - long_max) // 2, 0, (w - long_max) // 2 + long_max, h
    if h > long_max:
        return 0, (h - long_max) // 2, w, (h - long_max) // 2 + long_max
    return 0, 0, w, h


def thumbnail_png(rgb: np.ndarray, side: int = THUMBNAIL_SIDE) -> bytes:
    """The picture scaled to fit `side` (never enlarged), as PNG bytes (OpenCV: no Pillow needed)."""
    h, w = rgb.shape[:2]
    scale = min(1.0, side / max(h, w))
    small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, png = cv2.imencode(".png", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise OSError("OpenCV could not encode the thumbnail")
    return png.tobytes()


def style_name(stem: str, taken: Iterable[str] = ()) -> str:
    """A style name from a file stem ("Starry Night.jpg" -> "starry_night"), not one of `taken`."""
    base = re.sub(r"[^a-z0-9]+", "_", stem.lower()).strip("_")[:40] or "picture"
    taken = set(taken)
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    return name


def make_instant_style(rgb: np.ndarray, folder: Path, stem: str, taken: Iterable[str] = (),
                       source: str = "", runtime: str = "torch") -> InstantStyle:
    """Encode the picture `rgb` (from `read_picture`/`picture_array`) and write its style file in
    `folder`, named after `stem` unless that name is `taken`; the same picture made before (same
    pixels) is reused. `source`: the picture's path (a dedicated style is trained from it later).
    `runtime`: "onnxruntime" encodes on ONNX Runtime (so does "torch" where torch is not
    installed: the lite bundle). OSError if the folder cannot be written (nothing is left
    behind); nstcam.engines.instant_onnx.InstantUnavailable where neither can encode."""
    digest = hashlib.sha256(np.ascontiguousarray(rgb).tobytes()).hexdigest()
    existing = find_by_digest(folder, digest)
    if existing is not None:
        if "detail" not in existing.meta:  # made before calibration (or without torch): calibrate it now
            detail = calibrated_detail(existing.code, runtime)
            if detail is not None:
                existing.meta["detail"] = detail
                save_instant(existing.path, existing)
        return existing
    code = encode_picture(rgb, runtime)
    detail = calibrated_detail(code.rows, runtime)
    name = style_name(stem, set(taken) | {p.stem for p in folder.glob("*" + SUFFIX)})
    meta = {"name": name, "title": stem.replace("_", " ").strip() or name, "source": source,
            "picture_sha256": digest, "style_side": STYLE_SIDE, **({} if detail is None else {"detail": detail})}
    style = InstantStyle(code.rows, thumbnail_png(rgb), meta, folder / f"{name}{SUFFIX}")
    save_instant(style.path, style)
    log.info("instant style %s from %s", name, source or "a picture")
    return style


def probe_scenes() -> list[np.ndarray]:
    """The frames a style's detail amount is calibrated on: the demo scene, BGR uint8."""
    from nstcam.live.demo import DemoSource

    scene = DemoSource(*PROBE_SIZE)
    return [scene.frame_at(t) for t in PROBE_MOMENTS]


def probe_frames() -> list[torch.Tensor]:
    """`probe_scenes` as torch's calibration takes them: RGB [0, 1] (1, 3, H, W) tensors."""
    from trainer.images import rgb_array_to_tensor

    return [rgb_array_to_tensor(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)) for frame in probe_scenes()]


def calibrated_detail(code: np.ndarray, runtime: str = "torch") -> float | None:
    """The fine-luma amount for the style `code`: on torch (`nstcam.engines.detail`), or on ONNX
    Runtime where that is the `runtime` or torch is not installed (`nstcam.engines.calibration`:
    no torch to import for a dropped picture); None where neither can run MicroAST."""
    if runtime != "onnxruntime":
        try:
            from nstcam.engines.detail import calibrate_amount
            from nstcam.engines.microast import StyleCode, instant_net
        except ImportError:  # no torch: the lite bundle
            pass
        else:
            return calibrate_amount(instant_net(StyleCode(code)), probe_frames())
    from nstcam.engines.calibration import calibrate_outputs
    from nstcam.engines.instant_onnx import InstantUnavailable
    from nstcam.engines.ort import OnnxStyleEngine

    try:
        plain = OnnxStyleEngine({"s": InstantStyle(code, b"", {"detail": 0.0})}, device="cpu", size=None, threads=1)
    except InstantUnavailable:
        return None
    scenes = probe_scenes()
    return calibrate_outputs([plain.stylize(f).astype(np.float64) / 255 for f in scenes],
                             [cv2.cvtColor(f, cv2.COLOR_BGR2RGB).astype(np.float64) / 255 for f in scenes])


def encode_picture(rgb: np.ndarray, runtime: str = "torch") -> StyleCode:
    """The picture's MicroAST style code, on torch or ONNX Runtime (see `make_instant_style`)."""
    if runtime != "onnxruntime":
        try:
            from nstcam.engines.microast import encode_style
        except ImportError:  # no torch: the lite bundle
            pass
        else:
            return encode_style(rgb)
    from nstcam.engines.instant_onnx import encode_style as encode_on_ort

    return encode_on_ort(rgb)


def find_by_digest(folder: Path, digest: str) -> InstantStyle | None:
    """The instant style in `folder` made from the picture whose pixels hash to `digest`."""
    from nstcam.engines.instant import InstantStyleError, load_instant

    for path in sorted(folder.glob("*" + SUFFIX)):
        try:
            style = load_instant(path)
        except InstantStyleError:
            continue
        if style.meta.get("picture_sha256") == digest:
            return style
    return None


def style_from_picture(path: str | Path, folder: Path, taken: Iterable[str] = (),
                       runtime: str = "torch") -> InstantStyle:
    """`read_picture` then `make_instant_style` (`runtime` as there): PictureError for a bad
    picture, OSError for a folder that cannot be written."""
    path = Path(path)
    return make_instant_style(read_picture(path), folder, path.stem, taken, source=str(path.resolve()),
                              runtime=runtime)


def remove_instant_style(style: InstantStyle) -> None:
    """Delete the style file and the ONNX exports made from it."""
    if style.path is None:
        return
    for p in [style.path, *style.path.parent.glob(style.path.stem + ".*onnx")]:
        p.unlink(missing_ok=True)
