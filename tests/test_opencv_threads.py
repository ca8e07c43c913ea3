"""Every nstcam process runs OpenCV on its callers' threads unless the user chose otherwise (#21:
OpenCV's pool made the in-between frames and the chain wait for a core the engine's lanes or
another process held)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

CHECK = ("import os; from nstcam.cli import main; main(['--version']); import cv2; "
         "print('threads', os.environ.get('OPENCV_FOR_THREADS_NUM'), cv2.getNumThreads())")


@pytest.mark.slow
@pytest.mark.parametrize("given, expected", [({}, "1 1"), ({"OPENCV_FOR_THREADS_NUM": "2"}, "2 2")])
def test_the_cli_runs_opencv_on_one_thread_unless_the_user_chose(given, expected) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_FOR_THREADS_NUM"}
    run = subprocess.run([sys.executable, "-c", CHECK], env={**env, **given}, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert f"threads {expected}" in run.stdout


def test_an_opencv_already_loaded_is_switched_at_once(monkeypatch) -> None:
    import cv2

    from nstcam.host.opencv_threads import prefer_single_thread

    monkeypatch.setenv("OPENCV_FOR_THREADS_NUM", "")  # so that monkeypatch restores what was there
    monkeypatch.delenv("OPENCV_FOR_THREADS_NUM")
    before = cv2.getNumThreads()
    cv2.setNumThreads(2)
    try:
        assert prefer_single_thread() is True
        assert cv2.getNumThreads() == 1 and os.environ["OPENCV_FOR_THREADS_NUM"] == "1"
    finally:
        cv2.setNumThreads(before)


@pytest.mark.parametrize("given, expected", [({}, "1"), ({"OPENCV_FOR_THREADS_NUM": "4"}, "4")])
def test_a_child_environment_gets_one_opencv_thread_unless_the_user_chose(given, expected) -> None:
    from nstcam.host.opencv_threads import add_single_thread

    env = {"PATH": "/bin", **given}
    assert add_single_thread(env) is (given == {})
    assert env == {"PATH": "/bin", "OPENCV_FOR_THREADS_NUM": expected}
