"""Helpers for tests that run the app or the trainer in a child process and act on what it prints."""
from __future__ import annotations

import os
import re
import selectors
import subprocess
import time


def wait_for_stderr(proc: subprocess.Popen, pattern: str, timeout: float) -> str:
    """Read proc's stderr until the regular expression `pattern` matches; returns what was read.
    Fails the test if the process ends first or `timeout` seconds pass."""
    seen = ""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stderr, selectors.EVENT_READ)
        while not re.search(pattern, seen):
            left = deadline - time.monotonic()
            assert left > 0 and proc.poll() is None, f"no {pattern!r} in time; stderr:\n{seen[-3000:]}"
            if sel.select(left):
                seen += os.read(proc.stderr.fileno(), 65536).decode(errors="replace")
    return seen
