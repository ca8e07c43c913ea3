"""A style file as an engine takes it: a trained network (.pt) or an instant style, loaded with
torch, or found as its ONNX export without torch.

Shared by the registry and the engine process, which loads the styles itself when the app's own
engine runs their ONNX exports (a launch that never imports torch).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any


def load_torch_style(path: Path) -> Any:
    """The StyleModel or InstantStyle in `path`; StyleFileError / InstantStyleError say what is wrong."""
    from nstcam.engines.instant import SUFFIX, load_instant
    from trainer.stylefile import load_style  # torch

    return load_instant(path) if Path(path).suffix == SUFFIX else load_style(path)


def load_exported_style(path: Path) -> Any:
    """The InstantStyle in `path`, or the trained style file `path` as ONNX Runtime runs it
    (nstcam.engines.onnx_export.exported_style), without importing torch."""
    from nstcam.engines.instant import SUFFIX, load_instant
    from nstcam.engines.onnx_export import exported_style

    return load_instant(path) if Path(path).suffix == SUFFIX else exported_style(path)
