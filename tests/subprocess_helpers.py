"""Helpers for tests that run the app or the trainer in a child process and act on what it prints."""
from __future__ import annotations

import os
import re
import selectors
import subprocess
import time
from collections.abc import Callable


def wait_for_stderr(proc: subprocess.Popen, pattern: str, timeout: float) -> str:
    """Read proc's stderr until the regular expression `pattern` matches; returns what was read.
    Fails the test, with all proc printed, if proc ends first or `timeout` seconds pass."""
    seen = ""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stderr, selectors.EVENT_READ)
        while not re.search(pattern, seen):
            left = deadline - time.monotonic()
            assert left > 0, f"no {pattern!r} within {timeout} s; stderr:\n{seen[-3000:]}"
            if sel.select(left):
                chunk = os.read(proc.stderr.fileno(), 65536).decode(errors="replace")
                seen += chunk
                assert chunk or re.search(pattern, seen), \
                    f"the process ended (exit {proc.wait()}) before {pattern!r}; stderr:\n{seen[-3000:]}"
    return seen


def stop_when_printed(proc: subprocess.Popen, pattern: str, stop: Callable[[], None], timeout: float = 120) -> str:
    """Once `pattern` shows on proc's stderr, call `stop` (e.g. send a signal) and wait for proc to
    end; returns all of its stderr. proc is killed (and its stderr closed) if anything fails on the
    way, and a proc that does not end fails the test with what it printed."""
    seen = ""
    try:
        seen = wait_for_stderr(proc, pattern, timeout)
        stop()
        try:
            _, rest = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the process did not end within 60 s of being stopped; stderr:\n{seen[-3000:]}") from None
        return seen + rest.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
