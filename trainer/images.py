"""Image <-> tensor conversion shared by the trainer and the app.

Tensors are float32 RGB in [0, 1], shaped (1, 3, H, W); everything else in the project relies on
that convention (the loss nets normalise internally).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError


class ImageLoadError(ValueError):
    """An image file could not be read; the message names the file and the reason."""


def load_image(path: str | Path, size: int | None = None) -> Image.Image:
    """Open an image as RGB, optionally resized so its *short* side is `size` (aspect kept)."""
    path = Path(path)
    try:
        img = load_rgb(path)
    except FileNotFoundError:
        raise ImageLoadError(f"{path}: no such file") from None
    except Image.DecompressionBombError:  # PIL's guard against decoding gigabytes of pixels
        raise ImageLoadError(
            f"{path}: too large to open (over {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels); "
            "save a smaller copy, a few thousand pixels a side is plenty"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ImageLoadError(f"{path}: not a readable image ({exc})") from None
    if size is not None:
        img = resize_short_side(img, size)
    return img


def resize_short_side(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    scale = size / min(w, h)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    return img if new == (w, h) else img.resize(new, Image.Resampling.LANCZOS)


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    return rgb_array_to_tensor(np.array(img.convert("RGB")))


def rgb_array_to_tensor(arr: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 RGB array -> (1, 3, H, W) float tensor in [0, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).float().div_(255.0)
    return t.unsqueeze(0)


def tensor_to_rgb_array(t: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) tensor in [0, 1] -> uint8 HxWx3 RGB array."""
    if t.dim() == 4:
        t = t[0]
    t = t.detach().float().clamp(0, 1).mul(255).round().byte()
    return t.permute(1, 2, 0).cpu().numpy()


def tensor_to_pil(t: torch.Tensor) -> Image.Image:
    return Image.fromarray(tensor_to_rgb_array(t))


def save_image(t: torch.Tensor, path: str | Path) -> None:
    """Written atomically: a full disk or a kill leaves the old file or none, never half a PNG."""
    from trainer.fileio import atomic_save_image

    atomic_save_image(tensor_to_pil(t), path)


def load_rgb(path: Path, min_side: int | None = None) -> Image.Image:
    """Decode as 8-bit RGB, upright; JPEGs are decoded at reduced scale when the short side allows.

    Upright: a camera's EXIF orientation tag is applied (phones store portraits sideways and
    let the tag turn them). 8-bit: PIL's own `convert("RGB")` clips 16-bit and 32-bit pixels at
    255, which turns a 16-bit PNG almost white, so high-depth modes are rescaled first.
    """
    with Image.open(path) as img:
        if min_side is not None and img.format == "JPEG":
            img.draft("RGB", (min_side, min_side))  # keeps both sides >= min_side
        img.load()
        return ImageOps.exif_transpose(_to_8bit(img)).convert("RGB")


def _to_8bit(img: Image.Image) -> Image.Image:
    """`img` with 16-bit ("I;16*", "I") or float ("F") pixels mapped onto 0..255 ("L")."""
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        scale = 255.0 if float(arr.max(initial=0.0)) <= 1.0 else 1.0  # [0, 1] floats or [0, 255]
    elif img.mode == "I" or img.mode.startswith("I;16"):
        # 16-bit files (PNG, TIFF) open as "I;16*" or as 32-bit "I" holding 0..65535.
        arr = np.asarray(img, dtype=np.float32)
        scale = 255.0 / 65535.0
    else:
        return img
    out = Image.fromarray(np.clip(arr * scale + 0.5, 0, 255).astype(np.uint8), "L")
    out.info = dict(img.info)
    out.getexif().update(img.getexif())  # keep the orientation tag for exif_transpose
    return out
