"""How a live thread's `stop` ends: joined within its share of the deadline, or named in a warning.

Every live thread (capture, stylize, chain, in-between) stops the same way: its owner sets the
stop flag, wakes it, and joins it with a timeout. A thread that does not end in time (a camera
driver blocked in a read) is left running as a daemon and reported, never killed.
"""
from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


def join_within(thread: threading.Thread, timeout: float, what: str) -> bool:
    """Join `thread` for at most `timeout` seconds, unless it was never started or is the caller
    (a thread stopping itself from a callback cannot wait for itself); log a warning naming `what`
    if it is still running. True if it has ended or never started."""
    if thread.ident is not None and threading.current_thread() is not thread:
        thread.join(timeout)
        if thread.is_alive():
            log.warning("%s did not stop within %.1f s", what, timeout)
    return not thread.is_alive()
