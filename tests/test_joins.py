"""join_within: how every live thread's stop ends (joined in time, or named in a warning)."""
from __future__ import annotations

import logging
import threading

from nstcam.live.joins import join_within


def test_a_thread_that_ends_is_joined() -> None:
    go = threading.Event()
    thread = threading.Thread(target=go.wait, args=(5.0,), daemon=True)
    thread.start()
    go.set()
    assert join_within(thread, 5.0, "worker")
    assert not thread.is_alive()


def test_a_thread_still_running_at_the_deadline_is_named(caplog) -> None:
    release = threading.Event()
    thread = threading.Thread(target=release.wait, args=(30.0,), daemon=True)
    thread.start()
    try:
        with caplog.at_level(logging.WARNING, logger="nstcam.live.joins"):
            assert not join_within(thread, 0.2, "capture thread for demo")
        assert "capture thread for demo did not stop within 0.2 s" in caplog.text
    finally:
        release.set()
        thread.join(5.0)


def test_never_started_and_self_joins_do_not_wait() -> None:
    assert join_within(threading.Thread(target=lambda: None), 5.0, "never started")
    seen: list[bool] = []
    thread = threading.Thread(target=lambda: seen.append(join_within(threading.current_thread(), 5.0, "itself")))
    thread.start()
    thread.join(5.0)
    assert seen == [False]  # it cannot wait for itself: still running when asked, and no deadlock
