"""Instant styles: a picture's MicroAST style code and thumbnail in one small file, no training.

`NAME.instant` in a styles folder (the user styles folder, usually) is an uncompressed numpy
archive read with `allow_pickle=False`, so reading it needs neither torch nor trust: the format
tag and version, the (8, 64) float32 code (`nstcam.engines.microast.StyleCode`), a PNG thumbnail
and the metadata as JSON (name, title, the source picture's path and pixels' SHA-256, and `detail`:
the fine-luma amount calibrated for the painting, `nstcam.engines.detail`; files made before it
have none and get DETAIL_AMOUNT); about 30 KB, most of it the thumbnail.

An `InstantStyle` is what the engines take for a style, like a trained `StyleModel`: `build`
gives the per-frame network (content encoder and decoder with the code as a buffer), and
`nstcam.engines.onnx_export` exports it for ONNX Runtime the same way.
"""
from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

SUFFIX = ".instant"
FORMAT = "nstcam-instant-style"
VERSION = 1
VARIANT = "instant"
CODE_SHAPE = (8, 64)
DETAIL_AMOUNT = 0.5  # fine-luma amount of a file without a calibrated one (nstcam.engines.detail)


def weights_dir() -> Path:
    """MicroAST's published weights, their licence and, in the lite bundle, their ONNX exports."""
    return Path(str(resources.files("nstcam.engines") / "weights"))


@dataclass(frozen=True)
class StyleCode:
    """A painting as MicroAST sees it (nstcam.engines.microast): float32 `CODE_SHAPE`, rows `microast.CODE_ROWS`."""

    rows: np.ndarray

    def __post_init__(self) -> None:
        if self.rows.shape != CODE_SHAPE or self.rows.dtype != np.float32:
            raise ValueError(f"a style code is float32 {CODE_SHAPE}, got {self.rows.dtype} {self.rows.shape}")
        if not np.isfinite(self.rows).all():
            raise ValueError("a style code holds non-finite numbers")


class InstantStyleError(ValueError):
    """An instant style file is missing, damaged or not one; the message names the file."""


@dataclass
class InstantStyle:
    """A loaded (or just made) instant style: its code, thumbnail (PNG bytes) and metadata."""

    code: np.ndarray
    thumbnail_png: bytes
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def __post_init__(self) -> None:
        self.meta = {**self.meta, "variant": VARIANT}

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or (self.path.stem if self.path else "instant"))

    @property
    def detail(self) -> float:
        """The fraction of the frame's fine luma added back: calibrated when the style was made."""
        return float(self.meta.get("detail", DETAIL_AMOUNT))

    def build(self, device: Any = "cpu", dtype: Any = None):
        """The per-frame network on `device`. It computes in fp32 whatever `dtype` the engine
        runs (bf16 costs MicroAST's AdaIN statistics too much: ~30 dB PSNR to fp32), taking and
        returning `dtype` so the engine's frame path is unchanged. The frame's fine luma is
        added back (`self.detail`): the photo's structure, kept in ONNX exports too."""
        from nstcam.engines.microast import StyleCode, instant_net

        return instant_net(StyleCode(self.code), device, detail=self.detail)


def save_instant(path: str | Path, style: InstantStyle) -> None:
    """Write `style` to `path` atomically (a crash leaves the old file or none, never half)."""
    from trainer.fileio import atomic_write_bytes  # only writing needs the trainer package, not running

    buffer = io.BytesIO()
    np.savez(buffer, format=np.array(FORMAT), version=np.array(VERSION),
             code=np.asarray(style.code, np.float32),
             thumbnail=np.frombuffer(style.thumbnail_png, np.uint8),
             meta=np.array(json.dumps(style.meta, sort_keys=True)))
    atomic_write_bytes(path, buffer.getbuffer())


def load_instant(path: str | Path) -> InstantStyle:
    """Read an instant style file; InstantStyleError naming the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise InstantStyleError(f"{path}: no such instant style file")
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["format"]) != FORMAT:
                raise InstantStyleError(f"{path}: not an nstcam instant style (no '{FORMAT}' tag)")
            version = int(data["version"])
            if version > VERSION:
                raise InstantStyleError(f"{path}: instant style format version {version} is newer than "
                                        f"this nstcam supports ({VERSION}); upgrade nstcam")
            code = np.array(data["code"], np.float32)
            thumbnail = data["thumbnail"].tobytes()
            meta = json.loads(str(data["meta"]))
    except InstantStyleError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        # numpy's refusal of pickled objects advises loading them unsafely; they are never loaded here
        why = "it holds pickled Python objects" if "allow_pickle" in str(exc) else first_line(exc)
        raise InstantStyleError(f"{path}: damaged or not an instant style file ({why})") from None
    if code.shape != CODE_SHAPE or not np.isfinite(code).all() or not isinstance(meta, dict) \
            or not _valid_detail(meta.get("detail", 0.0)):
        raise InstantStyleError(f"{path}: damaged instant style file (bad style code or metadata)")
    return InstantStyle(code, thumbnail, meta, path)


def _valid_detail(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < float("inf")


def first_line(exc: BaseException) -> str:
    """An exception's message, first line only (or its type's name): for one-line reasons."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
