"""What every style engine shares, without torch: the `size` sentinel, the stats record, the
processing size and its rule, so the torch engine (`nstcam.engines.torch_engine`) and the ONNX Runtime engine
(`nstcam.engines.ort`) answer `output_size`, `stats` and `stylize(size=DEFAULT)` alike.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final

from nstcam.host.timing import RateMeter


PRECISIONS = ("auto", "fp32", "fp16", "bf16")


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Final = _Default()
"""Sentinel for `stylize(size=...)`: use the engine's own processing size."""


@dataclass(frozen=True)
class EngineStats:
    """`fps`: stylized frames per second actually produced over the last ~2 s (0 when idle).
    `latency_ms`: mean time of one `stylize` call over the last 30. `max_fps`: 1000 / latency_ms
    (times the frames it runs at once), what the engine could reach if frames came fast enough.
    `frames`: total stylized. All count the live stream only (frames at the engine's own size):
    gallery thumbnails and snapshots are other work."""

    fps: float
    latency_ms: float
    frames: int
    max_fps: float = 0.0


class FrameTimer:
    """Each engine's frame count, rate and mean `stylize` time, as its `stats` reports them."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._durations: deque[float] = deque(maxlen=30)
        self._meter = RateMeter()

    def tick(self, seconds: float) -> None:
        """One frame stylized in `seconds`."""
        self._durations.append(seconds)
        self._meter.tick()

    def stats(self, lanes: int = 1) -> EngineStats:
        """`lanes`: frames the engine runs at once, so it could reach that many per frame time."""
        durations = list(self._durations)
        latency = 1e3 * sum(durations) / len(durations) if durations else 0.0
        return EngineStats(fps=self._meter.rate, latency_ms=latency, frames=self._meter.count,
                           max_fps=lanes * 1e3 / latency if latency > 0 else 0.0)


class EngineBase:
    """The processing size and frame timing every engine keeps, checked and reported alike."""

    def __init__(self, size: int | None) -> None:
        self.size = size
        self._timer = FrameTimer()
        self._lanes = 1  # frames it runs at once (the ONNX Runtime engine's `use_lanes`)
        self.selection = ""  # why this engine runs, when it was chosen by measurement (`--backend auto`)

    def _with_selection(self, text: str) -> str:
        """`describe`'s text with the reason for the choice, if any (the window's status line shows it)."""
        return f"{text} · {self.selection}" if self.selection else text

    @property
    def size(self) -> int | None:
        """Requested processing short side (None: full input resolution)."""
        return self._size

    @size.setter
    def size(self, value: int | None) -> None:
        if value is not None and value < 2:
            raise ValueError(f"processing size {value} is too small")
        self._size = value

    def _requested(self, size: "int | None | _Default") -> int | None:
        """`stylize`'s size argument, with DEFAULT meaning the engine's own."""
        return self._size if isinstance(size, _Default) else size

    @property
    def stats(self) -> EngineStats:
        return self._timer.stats(self._lanes)


def processing_size(width: int, height: int, size: int | None) -> tuple[int, int]:
    """(w, h) with the short side = `size`, aspect kept, both even; `size` None keeps (w, h)."""
    if size is None:
        return width, height
    k = size / min(width, height)
    return max(2, round(width * k / 2) * 2), max(2, round(height * k / 2) * 2)
