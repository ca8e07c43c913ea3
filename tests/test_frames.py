"""LatestSlot ("latest frame wins" hand-off) and RateMeter."""
from __future__ import annotations

import threading
import time

from nstcam.host.timing import RateMeter
from nstcam.live.frames import LatestSlot


def test_put_replaces_unread_item_and_counts_drops() -> None:
    slot: LatestSlot[str] = LatestSlot()
    assert slot.latest() is None
    assert slot.put("a") == 1
    assert slot.put("b") == 2  # "a" was never read
    assert slot.put("c") == 3  # nor "b"
    assert slot.dropped == 2
    assert slot.get(timeout=0) == (3, "c")
    assert slot.put("d") == 4  # "c" was read: not a drop
    assert slot.dropped == 2
    assert slot.latest() == (4, "d")
    assert slot.seq == 4


def test_get_returns_only_newer_items() -> None:
    slot: LatestSlot[int] = LatestSlot()
    slot.put(10)
    assert slot.get(after=0, timeout=0) == (1, 10)
    assert slot.get(after=1, timeout=0.01) is None  # nothing newer than seq 1


def test_get_blocks_until_a_newer_item_is_put() -> None:
    slot: LatestSlot[str] = LatestSlot()
    slot.put("old")
    waiting = threading.Event()
    got: list[object] = []

    def consumer() -> None:
        waiting.set()
        got.append(slot.get(after=1, timeout=5))

    thread = threading.Thread(target=consumer)
    thread.start()
    assert waiting.wait(5)
    slot.put("new")
    thread.join(5)
    assert not thread.is_alive()
    assert got == [(2, "new")]


def test_get_times_out() -> None:
    slot: LatestSlot[int] = LatestSlot()
    t0 = time.monotonic()
    assert slot.get(timeout=0.05) is None
    assert time.monotonic() - t0 >= 0.04


def test_close_wakes_waiters_and_ignores_later_puts() -> None:
    slot: LatestSlot[int] = LatestSlot()
    started = threading.Event()
    got: list[object] = ["unset"]

    def consumer() -> None:
        started.set()
        got[0] = slot.get(timeout=10)

    thread = threading.Thread(target=consumer)
    thread.start()
    assert started.wait(5)
    slot.close()
    thread.join(5)
    assert not thread.is_alive()
    assert got[0] is None
    assert slot.closed
    assert slot.put(1) == 0
    assert slot.latest() is None


def test_items_carry_timestamps() -> None:
    slot: LatestSlot[str] = LatestSlot()
    before = time.monotonic()
    slot.put("now")
    slot.put("then", stamp=123.0)
    got = slot.get_stamped(timeout=0)
    assert got is not None and got.item == "then" and got.stamp == 123.0
    slot.put("auto")
    stamped = slot.latest_stamped()
    assert stamped is not None and stamped.stamp >= before


def test_rate_meter_measures_events_per_second() -> None:
    meter = RateMeter(window_s=100.0)
    now = time.monotonic()
    for i in range(11):
        meter.tick(now - 1.0 + i * 0.1)  # 11 events spanning 1 s: 10 intervals
    assert abs(meter.rate - 10.0) < 1e-6
    assert meter.count == 11


def test_rate_meter_drops_to_zero_when_events_stop() -> None:
    meter = RateMeter(window_s=1.0)
    old = time.monotonic() - 5.0
    meter.tick(old)
    meter.tick(old + 0.1)
    assert meter.rate == 0.0
