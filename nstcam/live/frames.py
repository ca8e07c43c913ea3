"""Hand-off primitives between the live pipeline's threads.

A webcam produces frames at its own pace and a style network consumes them at another; a growing
queue between them would turn every hiccup into permanent latency. `LatestSlot` holds only the
newest item instead ("latest frame wins") and counts what it overwrote, so the consumer always
works on the freshest frame and the UI can show how many were skipped.
"""
from __future__ import annotations

import threading
import time
from typing import Generic, NamedTuple, TypeVar

T = TypeVar("T")


class Stamped(NamedTuple, Generic[T]):
    """An item with its sequence number and the `time.monotonic()` at which it was put."""

    seq: int
    item: T
    stamp: float


class LatestSlot(Generic[T]):
    """A one-item mailbox: `put` replaces, `get` waits for something newer than what you saw.

    Sequence numbers start at 1 and grow by one per `put`, so a consumer passes the last seq it
    handled as `after` and never sees the same item twice. An item replaced before anyone read it
    (via `get` or `latest`) counts in `dropped`. Every item carries a timestamp (`put(stamp=...)`,
    default: now on the monotonic clock), which `get_stamped` / `latest_stamped` return; the live
    pipeline uses it for capture-to-result latency. Thread-safe for any number of producers and
    consumers.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._seq = 0
        self._item: T | None = None
        self._stamp = 0.0
        self._read_seq = 0
        self._closed = False
        self.dropped = 0

    def put(self, item: T, stamp: float | None = None) -> int:
        """Store `item` as the newest; returns its sequence number (0 if the slot is closed)."""
        now = time.monotonic() if stamp is None else stamp
        with self._cond:
            if self._closed:
                return 0
            if self._seq > self._read_seq:
                self.dropped += 1
            self._seq += 1
            self._item, self._stamp = item, now
            self._cond.notify_all()
            return self._seq

    def get(self, after: int = 0, timeout: float | None = None) -> tuple[int, T] | None:
        """Wait for an item with seq > `after`; None on timeout or once the slot is closed."""
        got = self.get_stamped(after, timeout)
        return None if got is None else (got.seq, got.item)

    def get_stamped(self, after: int = 0, timeout: float | None = None, mark_read: bool = True) -> Stamped[T] | None:
        """Like `get`, also returning the item's timestamp. `mark_read=False`: a second consumer
        that sees every item (the in-between frames) does not count as reading it, so `dropped`
        still counts what the main consumer skipped."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or self._seq > after, timeout)
            if self._closed or self._seq <= after:
                return None
            if not mark_read:
                return Stamped(self._seq, self._item, self._stamp)  # type: ignore[arg-type]
            return self._take()

    def latest(self) -> tuple[int, T] | None:
        """The newest item without waiting (None if nothing was ever put or the slot is closed)."""
        got = self.latest_stamped()
        return None if got is None else (got.seq, got.item)

    def latest_stamped(self) -> Stamped[T] | None:
        with self._cond:
            if self._closed or self._seq == 0:
                return None
            return self._take()

    def _take(self) -> Stamped[T]:
        self._read_seq = self._seq
        return Stamped(self._seq, self._item, self._stamp)  # type: ignore[arg-type]

    def close(self) -> None:
        """Wake every waiter with None; later puts are ignored. Idempotent."""
        with self._cond:
            self._closed = True
            self._item = None
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def seq(self) -> int:
        """Sequence number of the newest item put so far (0 before the first)."""
        return self._seq
