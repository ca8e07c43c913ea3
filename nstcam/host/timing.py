"""Frame rates as the user sees them, shared by the capture thread and every engine."""
from __future__ import annotations

import threading
import time
from collections import deque


class RateMeter:
    """Events per second over a sliding time window, for "real" fps figures in the UI.

    A window (rather than an EMA of intervals) makes the figure drop to 0 when events stop,
    instead of freezing at the last rate.
    """

    def __init__(self, window_s: float = 2.0, max_events: int = 240) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque(maxlen=max_events)
        self._lock = threading.Lock()
        self.count = 0

    def tick(self, t: float | None = None) -> None:
        with self._lock:
            self._times.append(time.monotonic() if t is None else t)
            self.count += 1

    @property
    def rate(self) -> float:
        now = time.monotonic()
        with self._lock:
            while self._times and now - self._times[0] > self.window_s:
                self._times.popleft()
            if len(self._times) < 2:
                return 0.0
            span = self._times[-1] - self._times[0]
            return (len(self._times) - 1) / span if span > 0 else 0.0

    def reset(self) -> None:
        with self._lock:
            self._times.clear()
