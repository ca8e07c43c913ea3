"""Style files (.pt, torch) exported to ONNX models for the torch-free engine, cached and reused.

The exported graph takes the frame as the camera delivers it and returns what the window shows:
BGR uint8 (1, H, W, 3) in, RGB uint8 (1, H, W, 3) out, with the channel swap (in the first
convolution's weights: nstcam.engines.input_flip), scaling, clamping and rounding inside, so
ONNX Runtime does that work in its own threads and the runtime needs neither torch nor float
copies in numpy. H and W must be multiples of `SIDE_MULTIPLE` (at least
`MIN_SIDE`): the TransformerNet pads other sizes in Python, which a trace cannot keep, so the
engine (`nstcam.engines.ort`) pads the frame the same way (edge replicate) and crops the result.

Where the ONNX file goes: next to the style file (`van_gogh-light.pt` -> `van_gogh-light.onnx`)
when that folder is writable, else in the user cache (`<cache>/nstcam/onnx/<stem>-<hash>.onnx`),
e.g. for the bundled styles of an installed or frozen app. A cached file records the SHA-256 of
the style file it came from, so a retrained style is exported again.

Quantisation ("int8"): static, QDQ, per-channel int8 weights and uint8 activations calibrated on
frames the caller passes (the app and `python -m nstcam.export` pass frames of the built-in demo
scene, the only images sure to exist: an engine knows no frame sources); "int8-dynamic" quantises
the weights only. The weights use 7 bits (reduce_range): on AVX2 CPUs without VNNI, ONNX Runtime
multiplies uint8 by int8 with VPMADDUBSW, whose int16 sum of two products saturates once
2 x 255 x |w| > 32767, i.e. for 8-bit weights beyond +-64, and the picture broke (26 dB from fp32
measured there). With 7-bit weights no sum can saturate, on every x86 CPU, at 0.2 dB here
(40.0 -> 39.8 dB on a VNNI CPU, where nothing saturates either way). uint8 weights (U8U8) also
avoid it but ran at 0.6x the speed of fp32. Whether int8 is used is decided by measurement
(nstcam.engines.choice: at least 35 dB from fp32, and faster).
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from nstcam.engines.choice import model_arch_id
from nstcam.engines.input_flip import fold_flip_in_file
from nstcam.engines.int8_graph import pad_in_uint8
from nstcam.engines.onnx_metadata import read_metadata
from nstcam.engines.ort import (FORMAT, MIN_SIDE, QUANTIZATIONS, SIDE_MULTIPLE, SUFFIXES, LateExport, OnnxStyle,
                                pad_frame, read_style)
from nstcam.host.choices import RememberedChoices
from nstcam.host.userdirs import user_cache_dir
from trainer.styleheader import StyleFileError, read_style_meta

log = logging.getLogger(__name__)

VERSION = "5"  # 2: the "arch" metadata, 7-bit int8 weights; 3: instant styles add back the frame's fine luma;
# 4: int8 pads on uint8 (nstcam.engines.int8_graph); 5: no channel flip (nstcam.engines.input_flip)
OPSET = 17
INPUT, OUTPUT = "bgr", "rgb"
TRACE_SHAPE = (240, 320)  # any multiple of SIDE_MULTIPLE: the graph keeps H and W dynamic


_UNUSABLE = RememberedChoices("unusable_styles")  # by SHA-256: why a style file's weights did not load


class ExportError(RuntimeError):
    """A style could not be exported; the message names the file and the reason."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_dir() -> Path:
    """The user cache folder for exported styles (not created here)."""
    return user_cache_dir() / "onnx"


def _writable(folder: Path) -> bool:
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)


def onnx_path(style_path: Path, quantization: str = "fp32", sha256: str | None = None) -> Path:
    """Where the ONNX export of `style_path` lives: beside it if that folder is writable, else cached."""
    style_path = Path(style_path)
    suffix = SUFFIXES[quantization]
    if _writable(style_path.parent):
        return style_path.with_name(style_path.stem + suffix)
    digest = sha256 or file_sha256(style_path)
    return cache_dir() / f"{style_path.stem}-{digest[:12]}{suffix}"


def is_current(onnx_file: Path, style_path: Path, sha256: str | None = None) -> bool:
    """True when `onnx_file` is an nstcam export of exactly this style file."""
    if not onnx_file.is_file():
        return False
    meta = read_metadata(onnx_file)
    return (meta.get("format") == FORMAT and meta.get("version") == VERSION
            and meta.get("source_sha256") == (sha256 or file_sha256(style_path)))


def ensure_onnx(style_path: Path, quantization: str = "fp32",
                calibration: Sequence[np.ndarray] | None = None) -> Path:
    """The up-to-date ONNX export of `style_path`, exporting it first when missing or stale
    (`calibration`: as for `export_style`)."""
    target, digest, current = export_state(style_path, quantization)
    return target if current else export_style(Path(style_path), target, quantization, calibration, sha256=digest)


def late_onnx(style_path: Path, quantization: str = "fp32", calibration: Sequence[np.ndarray] | None = None,
              style_meta: Mapping[str, Any] | None = None) -> Path | LateExport:
    """`ensure_onnx` for a style that may not be shown: its current export, or the export to make
    on the style's first frame (`LateExport`, made in a separate process:
    nstcam.engines.quick_start.export_elsewhere; `style_meta`: the style file's metadata, for its
    name and title until the export records them)."""
    from nstcam.engines.quick_start import export_elsewhere

    style_path = Path(style_path)
    target, digest, current = export_state(style_path, quantization)
    if current:
        return target
    meta = style_metadata(_source(style_path, digest), style_meta or {}, quantization)
    return LateExport(meta["name"], target, meta,
                      make=export_elsewhere(style_path, target, quantization, calibration, digest))


def exported_style(style_path: Path, quantization: str = "fp32",
                   calibration: Sequence[np.ndarray] | None = None) -> OnnxStyle:
    """The trained style file `style_path` as the torch-free engine runs it, found without torch:
    its current export, or a `LateExport` (torch is imported when that is made). A launch that
    remembered ONNX Runtime so starts even when a short first session left exports unmade.
    StyleFileError for a file that is no style file, or whose weights failed to load when it was
    to be exported (remembered by its SHA-256: the header alone cannot tell); ValueError for an
    unreadable export."""
    export = late_onnx(style_path, quantization, calibration, read_style_meta(style_path))
    if not isinstance(export, LateExport):
        return read_style(export)
    unusable = _UNUSABLE.get(export.meta["source_sha256"])
    if unusable is not None:  # its header reads, its weights did not load when it was exported
        raise StyleFileError(f"{style_path}: {unusable.get('reason') or 'unusable style file'}")
    return export


def export_state(style_path: Path, quantization: str = "fp32") -> tuple[Path, str, bool]:
    """(where the export of `style_path` goes, the style file's SHA-256, whether the export there
    is current); OSError if the style file cannot be read."""
    style_path = Path(style_path)
    digest = file_sha256(style_path)
    target = onnx_path(style_path, quantization, digest)
    return target, digest, is_current(target, style_path, digest)


def export_style(style_path: Path, out: Path | None = None, quantization: str = "fp32",
                 calibration: Sequence[np.ndarray] | None = None, sha256: str | None = None) -> Path:
    """Export the style file `style_path` (a trained `.pt` or an instant style) to `out` (default:
    `onnx_path`); returns the path written.

    `calibration`: BGR uint8 frames, required for static int8. Raises
    ExportError (bad style file, unwritable folder, exporter failure).
    """
    from nstcam.engines.instant import SUFFIX, InstantStyleError, load_instant
    from trainer.stylefile import load_style

    style_path = Path(style_path)
    try:
        model = load_instant(style_path) if style_path.suffix == SUFFIX else load_style(style_path)
    except (StyleFileError, InstantStyleError) as exc:
        if sha256 is not None:  # a launch without torch finds this file unusable by its content
            _UNUSABLE.put(sha256, {"reason": str(exc).removeprefix(f"{style_path}: ")})
        raise ExportError(str(exc)) from None
    digest = sha256 or file_sha256(style_path)
    home = onnx_path(style_path, quantization, digest)  # where exports live
    target = Path(out) if out is not None else home
    source = _source(style_path, digest)
    also_float = None
    if quantization != "fp32" and target == home:
        float_path = onnx_path(style_path, "fp32", digest)
        also_float = None if is_current(float_path, style_path, digest) else float_path
    return export_model(model, target, quantization, calibration, source, also_float)


def export_model(model, out: Path, quantization: str = "fp32", calibration: Sequence[np.ndarray] | None = None,
                 source: dict[str, str] | None = None, also_float: Path | None = None) -> Path:
    """Export a loaded StyleModel to `out` atomically (benchmarks export models never saved).

    `source`: metadata naming where it came from (source, source_sha256, a default name); the
    model's own name, variant, title, artist and year are stored too, and its architecture id
    (nstcam.engines.choice.arch_id), under which a torch-free launch finds the remembered backend.
    `also_float`: a quantized export also writes the float graph it was made from there, as the
    fp32 export. A launch without torch finds its style's network by the fp32 export, and the
    window that chose int8 exports every style in int8 anyway (the launch style's before the
    first frame, the others' on their first frames); without this, the fp32 exports came only
    from a background process that a session shorter than about a minute on a busy 2-core
    machine never let finish.
    """
    import torch

    if quantization not in QUANTIZATIONS:
        raise ExportError(f"unknown quantization {quantization!r}; choose one of {', '.join(QUANTIZATIONS)}")
    target = Path(out)
    meta = {**style_metadata(source or {"name": target.name.split(".")[0].split("-")[0]}, model.meta, quantization),
            "side_multiple": str(SIDE_MULTIPLE), "min_side": str(MIN_SIDE), "arch": model_arch_id(model)}
    label = meta.get("source") or target.name
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="nstcam-onnx-", dir=target.parent) as tmp:
            fp32 = Path(tmp) / "fp32.onnx"
            trace_frame_net(model.build("cpu", torch.float32), fp32)
            final = fp32 if quantization == "fp32" else _quantize(fp32, Path(tmp), quantization, calibration)
            write_with_metadata(final, target, meta)
            if also_float is not None and final != fp32:
                write_with_metadata(fp32, also_float, {**meta, "quantization": "fp32"})
    except ExportError:
        raise
    except OSError as exc:
        raise ExportError(f"{label}: could not write {target} ({exc})") from None
    except Exception as exc:  # exporter/quantizer failures come as many types
        raise ExportError(f"{label}: ONNX export failed ({type(exc).__name__}: {exc})") from None
    log.info("exported %s -> %s (%s)", label, target, quantization)
    return target


def _source(style_path: Path, digest: str) -> dict[str, str]:
    """What an export records of the file it came from (the name: a default, the style's own wins)."""
    return {"source": style_path.name, "source_sha256": digest, "name": style_path.stem.split("-")[0]}


def style_metadata(source: Mapping[str, str], style_meta: Mapping[str, Any], quantization: str) -> dict[str, str]:
    """The metadata an export records about its style: `source` (where it came from), the format
    and the style's own name, variant, title, artist and year."""
    return {"format": FORMAT, "version": VERSION, **source, "quantization": quantization,
            **{k: str(style_meta[k]) for k in ("name", "variant", "title", "artist", "year") if style_meta.get(k)}}


def trace_frame_net(net, path: Path, extra: dict[str, object] | None = None) -> None:
    """Export `net` (RGB [0, 1] in and out) as a graph taking and returning frames (see the module
    doc). `extra`: further inputs, by name, with an example tensor each, passed on to `net` after
    the frame (an instant style's code: nstcam.engines.instant_onnx)."""
    import torch
    from torch import nn

    class FrameIO(nn.Module):
        """BGR uint8 (1, H, W, 3) -> RGB uint8 (1, H, W, 3), as StyleEngine converts on the CPU."""

        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, bgr: torch.Tensor, *inputs: torch.Tensor) -> torch.Tensor:
            x = bgr.flip(-1).permute(0, 3, 1, 2).float().div(255.0)
            y = self.inner(x, *inputs)
            return y.clamp(0, 1).mul(255.0).round().to(torch.uint8).permute(0, 2, 3, 1)

    extra = extra or {}
    example = torch.zeros((1, *TRACE_SHAPE, 3), dtype=torch.uint8)
    dims = {1: "height", 2: "width"}
    with quiet("torch.onnx"), torch.inference_mode():
        torch.onnx.export(FrameIO(net).eval(), (example, *extra.values()), str(path), input_names=[INPUT, *extra],
                          output_names=[OUTPUT], dynamic_axes={INPUT: dims, OUTPUT: dims},
                          opset_version=OPSET, dynamo=False)
    fold_flip_in_file(path, INPUT)


def _quantize(fp32: Path, tmp: Path, quantization: str, calibration: Sequence[np.ndarray] | None) -> Path:
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    import onnx

    prepared, out = tmp / "prepared.onnx", tmp / "int8.onnx"
    with quiet("onnxruntime", "root"):
        # Symbolic shape inference is for dynamic-shape graphs; it cannot complete MicroAST's, and then
        # writes sym_shape_infer_temp.onnx and its data files into the working folder. ONNX's own
        # shape inference, which still runs, is all these convolutional nets need.
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        if quantization == "int8-dynamic":
            quantize_dynamic(str(prepared), str(out), weight_type=QuantType.QInt8)
            return out
        frames = list(calibration or ())
        if not frames:
            raise ExportError("static int8 needs at least one calibration frame (the caller passes them)")

        class Frames(CalibrationDataReader):
            def __init__(self) -> None:
                self._it = iter(frames)

            def get_next(self) -> dict[str, np.ndarray] | None:
                frame = next(self._it, None)
                return None if frame is None else {INPUT: pad_frame(frame)[0][None]}

        quantize_static(str(prepared), str(out), Frames(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=True)
    model = onnx.load(str(out))
    pad_in_uint8(model)
    onnx.save(model, str(out))
    return out


def write_with_metadata(src: Path, target: Path, meta: dict[str, str]) -> None:
    """Copy the ONNX model `src` to `target` atomically with `meta` as its metadata."""
    import onnx

    model = onnx.load(str(src))
    del model.metadata_props[:]
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(model.SerializeToString())
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def quiet(*loggers: str) -> Iterator[None]:
    """Silence the exporters' and quantizer's chatter (warnings about training mode, shapes)."""
    import warnings

    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in loggers]
    for logger, _ in saved:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)
