"""SIGTERM (a `kill`, a logout), SIGHUP (the terminal closed) and Ctrl-C close the window as its
close button does: the recording is finished and playable, the engine process ends, and nothing
prints a traceback. SIGTERM stops `render` as Ctrl-C does."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from nstcam_fixtures import count_frames, make_video
from nstcam.engines import process as engine_process
from subprocess_helpers import stop_when_printed

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT", "SIGHUP"])
def test_a_signal_closes_the_window_cleanly(styles_dir, tmp_path, sig):
    record = tmp_path / "take.mp4"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "XDG_DATA_HOME": str(tmp_path / "data")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nstcam", "--camera", "demo", "--styles-dir", str(styles_dir), "--style", "ember",
         "--size", "48", "--device", "cpu", "--backend", "torch", "--engine-process", "on", "--record", str(record), "-v"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    # As a terminal does: the signal goes to the app and its children.
    err = stop_when_printed(proc, "engine process ready", lambda: os.killpg(proc.pid, getattr(signal, sig)))
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err and "leaked shared_memory" not in err and "died unexpectedly" not in err, err[-3000:]
    if sig != "SIGTERM":  # a terminal's signals: the app, not the signal, stops the engine process
        assert "engine process ended" not in err, err[-3000:]
    frames, size = count_frames(record)
    assert frames > 0 and size == (64, 48)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_stops_render_with_a_playable_file_and_one_line(styles_dir, tmp_path):
    clip = make_video(tmp_path / "long.avi", frames=3000, size=(160, 120))
    out = tmp_path / "out.mp4"
    proc = subprocess.Popen(
        [sys.executable, "-m", "nstcam", "render", str(clip), "-o", str(out), "--styles-dir", str(styles_dir),
         "--style", "ember", "--size", "48"],
        cwd=REPO, env={**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    # Once the progress bar counts written frames.
    err = stop_when_printed(proc, r"[1-9]\d*/3000 \[", lambda: proc.send_signal(signal.SIGTERM))
    assert proc.returncode == 143, err[-3000:]
    assert err.rstrip().endswith("nstcam: terminated") and "Traceback" not in err, err[-3000:]
    frames, _ = count_frames(out)
    assert 0 < frames < 3000


class GoneParent:
    """The child's end of the pipe after the app was killed: the send works, the next read is reset."""

    def send(self, _msg) -> None:
        pass

    def recv(self):
        raise ConnectionResetError(104, "Connection reset by peer")


def test_the_engine_process_ends_quietly_when_the_app_is_killed(style_models, monkeypatch):
    monkeypatch.setattr(engine_process, "TERMINAL_SIGNALS", ())  # run here, it must not make pytest ignore Ctrl-C
    engine_process._child_main(GoneParent(), style_models, 32, "fp32", 1)  # returns: no traceback in the child
