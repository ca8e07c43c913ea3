"""What every style engine shares, without torch: the `size` sentinel, the stats record and the
processing-size rule, so the torch engine (`nstcam.engine`) and the ONNX Runtime engine
(`nstcam.onnx_engine`) answer `output_size`, `stats` and `stylize(size=DEFAULT)` alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Final


PRECISIONS = ("auto", "fp32", "fp16", "bf16")


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Final = _Default()
"""Sentinel for `stylize(size=...)`: use the engine's own processing size."""


@dataclass(frozen=True)
class EngineStats:
    """`fps`: stylized frames per second actually produced over the last ~2 s (0 when idle).
    `latency_ms`: mean time of one `stylize` call over the last 30. `max_fps`: 1000 / latency_ms,
    what the engine could reach if frames came fast enough. `frames`: total stylized."""

    fps: float
    latency_ms: float
    frames: int
    max_fps: float = 0.0


def processing_size(width: int, height: int, size: int | None) -> tuple[int, int]:
    """(w, h) with the short side = `size`, aspect kept, both even; `size` None keeps (w, h)."""
    if size is None:
        return width, height
    k = size / min(width, height)
    return max(2, round(width * k / 2) * 2), max(2, round(height * k / 2) * 2)
