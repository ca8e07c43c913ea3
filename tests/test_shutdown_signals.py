"""SIGTERM (a `kill`, a logout), SIGHUP (the terminal closed) and Ctrl-C close the window as its
close button does: the recording is finished and playable, the engine process ends, and nothing
prints a traceback."""
from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app_fixtures import count_frames, styles_dir  # noqa: F401
from nstcam.engine_process import _child_main
from nstcam_fixtures import media_dir, style_files, style_models  # noqa: F401

REPO = Path(__file__).resolve().parent.parent


def wait_for(proc: subprocess.Popen, text: str, timeout: float) -> str:
    """proc's stderr up to a line containing `text` (what was read so far)."""
    seen = ""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stderr, selectors.EVENT_READ)
        while text not in seen:
            left = deadline - time.monotonic()
            assert left > 0 and proc.poll() is None, f"no {text!r} in time; stderr:\n{seen[-3000:]}"
            if sel.select(left):
                seen += os.read(proc.stderr.fileno(), 65536).decode(errors="replace")
    return seen


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT", "SIGHUP"])
def test_a_signal_closes_the_window_cleanly(styles_dir, tmp_path, sig):
    record = tmp_path / "take.mp4"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "XDG_DATA_HOME": str(tmp_path / "data")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nstcam", "--camera", "demo", "--styles-dir", str(styles_dir), "--style", "ember",
         "--size", "48", "--device", "cpu", "--engine-process", "on", "--record", str(record), "-v"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        seen = wait_for(proc, "engine process ready", timeout=120)
        proc.send_signal(getattr(signal, sig))
        _, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = seen + rest.decode(errors="replace")
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err and "leaked shared_memory" not in err, err[-3000:]
    frames, size = count_frames(record)
    assert frames > 0 and size == (64, 48)


class GoneParent:
    """The child's end of the pipe after the app was killed: the send works, the next read is reset."""

    def send(self, _msg) -> None:
        pass

    def recv(self):
        raise ConnectionResetError(104, "Connection reset by peer")


def test_the_engine_process_ends_quietly_when_the_app_is_killed(style_models, one_torch_thread):
    _child_main(GoneParent(), style_models, 32, "fp32", 1)  # returns: no traceback in the child
