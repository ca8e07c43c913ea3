"""The allocator tuning the app applies at start-up."""
from __future__ import annotations

import sys

import pytest

from nstcam.host.malloc import keep_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")
def test_keep_freed_memory_is_applied_on_glibc() -> None:
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not a glibc system")
    assert keep_freed_memory() is True


def test_keep_freed_memory_is_a_no_op_elsewhere(monkeypatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    assert keep_freed_memory() is False
