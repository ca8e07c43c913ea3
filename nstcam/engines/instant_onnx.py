"""MicroAST on ONNX Runtime, so the torch-free runtime (the lite bundle, `--backend onnxruntime`)
makes and runs instant styles too.

Two graphs, exported from the published weights with torch (`export_graphs`):

- the style encoder (`ENCODER_FILE`): a picture as RGB uint8 (1, H, W, 3) -> its (8, 64) float32
  code, what `nstcam.engines.microast.encode_style` computes (run once per picture);
- the per-frame network (`FRAME_FILE`): a BGR uint8 frame, a code and a fine-luma amount -> RGB
  uint8, like a trained style's export (nstcam.engines.onnx_export) but with the code and the
  amount (`nstcam.engines.detail`) as inputs (`CODE_INPUT`, `DETAIL_INPUT`), so one graph runs
  every instant style, each with its own calibrated amount, and a new one needs no export.

The lite bundle ships both beside the weights (`weights_dir()`; packaging/build.sh exports them);
elsewhere they are exported once into the user cache (that needs torch) and again when `VERSION`
changes. Nothing here imports torch unless it has to export.
"""
from __future__ import annotations

import functools
import importlib
import logging
import tempfile
import threading
from pathlib import Path

import numpy as np

from nstcam.engines.instant import CODE_SHAPE, StyleCode, weights_dir
from nstcam.engines.ort import CODE_INPUT, DETAIL_INPUT, session_options

log = logging.getLogger(__name__)

ENCODER_FILE, FRAME_FILE = "microast-style-encoder.onnx", "microast-frame.onnx"
PICTURE_INPUT, CODE_OUTPUT = "rgb", "code"
VERSION = "2"  # the graphs' own version (metadata "microast_onnx"): a change re-exports cached copies; 2: the amount input
TRACE_SIDE = 64  # the encoder's example picture; H and W stay dynamic


class InstantUnavailable(RuntimeError):
    """Instant styles cannot run here: no exported MicroAST graphs and no torch to export them."""


def cache_folder() -> Path:
    """Where the graphs are exported when nstcam does not ship them (not created here)."""
    from nstcam.engines.onnx_export import cache_dir

    return cache_dir() / "microast"


def _is_current(path: Path) -> bool:
    import onnxruntime as ort

    if not path.is_file():
        return False
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph types for a damaged file
        log.info("%s: unreadable ONNX file (%s); exporting it again", path, exc)
        return False
    return session.get_modelmeta().custom_metadata_map.get("microast_onnx") == VERSION


_export_lock = threading.Lock()
_checked: dict[tuple[Path, Path], tuple[tuple[int, int], ...]] = {}  # graphs found current: their (mtime, size)


def _stamp(paths: tuple[Path, Path]) -> tuple[tuple[int, int], ...]:
    return tuple((p.stat().st_mtime_ns, p.stat().st_size) if p.is_file() else (0, 0) for p in paths)


def graph_files() -> tuple[Path, Path]:
    """(encoder, frame network) files: those shipped with nstcam, else the user cache's, exported
    there first if missing or stale (checked once per process while the files stay unchanged).
    InstantUnavailable (one line) where that needs torch and torch is not installed."""
    with _export_lock:
        for folder in (weights_dir(), cache_folder()):
            paths = (folder / ENCODER_FILE, folder / FRAME_FILE)
            if _checked.get(paths) == _stamp(paths):
                return paths
            if all(_is_current(p) for p in paths):
                _checked[paths] = _stamp(paths)
                return paths
        try:
            importlib.import_module("torch")  # imported, not just found: a stub that refuses counts as absent
        except ImportError:
            raise InstantUnavailable("this nstcam has no ONNX export of MicroAST (the instant-style network) "
                                     "and no torch to make one; reinstall it, or install torch") from None
        paths = export_graphs(cache_folder())
        _checked[paths] = _stamp(paths)
        return paths


def export_graphs(folder: Path) -> tuple[Path, Path]:
    """Export both graphs into `folder` (atomically, each); needs torch. Returns their paths."""
    import torch

    from nstcam.engines.instant import DETAIL_AMOUNT
    from nstcam.engines.microast import instant_net, style_encoder
    from nstcam.engines.onnx_export import FORMAT, quiet, trace_frame_net, write_with_metadata

    folder.mkdir(parents=True, exist_ok=True)
    meta = {"microast_onnx": VERSION, "source": "MicroAST (EndyWon/MicroAST, MIT), iteration 160000"}
    encoder, frame = folder / ENCODER_FILE, folder / FRAME_FILE
    with tempfile.TemporaryDirectory(prefix="nstcam-microast-", dir=folder) as tmp:
        plain = Path(tmp) / "encoder.onnx"
        example = torch.zeros((1, TRACE_SIDE, TRACE_SIDE, 3), dtype=torch.uint8)
        dims = {1: "height", 2: "width"}
        with quiet("torch.onnx"), torch.inference_mode():
            torch.onnx.export(_picture_io(style_encoder()).eval(), (example,), str(plain),
                              input_names=[PICTURE_INPUT], output_names=[CODE_OUTPUT],
                              dynamic_axes={PICTURE_INPUT: dims}, opset_version=17, dynamo=False)
        write_with_metadata(plain, encoder, {**meta, "kind": "style-encoder"})
        plain = Path(tmp) / "frame.onnx"
        net = instant_net(StyleCode(np.zeros(CODE_SHAPE, np.float32)), detail=DETAIL_AMOUNT)
        trace_frame_net(net, plain, {CODE_INPUT: torch.zeros(CODE_SHAPE),
                                     DETAIL_INPUT: torch.full((1,), DETAIL_AMOUNT)})
        write_with_metadata(plain, frame, {**meta, "kind": "frame", "format": FORMAT, "name": "instant",
                                           "variant": "instant", "quantization": "fp32"})
    log.info("exported MicroAST to ONNX in %s", folder)
    return encoder, frame


def _picture_io(encoder):
    """The style encoder taking the picture as RGB uint8 (1, H, W, 3), as `encode_style` converts it."""
    import torch
    from torch import nn

    class PictureIO(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, rgb: torch.Tensor) -> torch.Tensor:
            return self.encoder(rgb.permute(0, 3, 1, 2).float().div(255.0))

    return PictureIO()


@functools.lru_cache(maxsize=1)
def _encoder_session():
    import onnxruntime as ort

    return ort.InferenceSession(str(graph_files()[0]), session_options(None), providers=["CPUExecutionProvider"])


def encode_style(picture_rgb: np.ndarray) -> StyleCode:
    """An RGB uint8 (H, W, 3) picture -> its `StyleCode`, on ONNX Runtime (the CPU); the same code
    as nstcam.engines.microast.encode_style within float rounding. InstantUnavailable as for
    `graph_files`."""
    rgb = np.ascontiguousarray(picture_rgb, np.uint8)[None]
    code = _encoder_session().run(None, {PICTURE_INPUT: rgb})[0]
    return StyleCode(np.asarray(code, np.float32))
