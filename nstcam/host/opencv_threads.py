"""OpenCV on its caller's thread only, for every nstcam process.

Why: the app already spreads its work over threads of its own (the engine's lanes, the chain, the
in-between frames, capture, drawing). OpenCV's pool would split each of their small operations
(DIS flow at 160x120, a 320x240 remap, a blur) in two and wait for both halves: with the cores
already busy, the half on the pool's thread waits for a core, and the caller waits for it.
Side by side on the 2-core test machine (emulated AVX2, ONNX Runtime int8 with two frames in
flight, `--camera demo --size 240`, 8 s; issue #21), fresh stylizations per second, medians:
idle 20.1 with OpenCV's 2 threads against 20.9 with 1 (4 rounds, 1 ahead in each); beside a
busy core 11.4 against 13.6 (5 rounds). In-between frames (2.6 ms alone with 2 threads, 3.2 ms
with 1) still come at the camera's rate.
OpenCV reads OPENCV_FOR_THREADS_NUM when it is first imported; a value the user set is kept.
"""
from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping

log = logging.getLogger(__name__)

THREADS = "OPENCV_FOR_THREADS_NUM"


def add_single_thread(environ: MutableMapping[str, str]) -> bool:
    """Set OPENCV_FOR_THREADS_NUM=1 in `environ` unless the user chose a thread count; True when
    set. (For a child process's environment, or os.environ.)"""
    if THREADS in environ:
        return False
    environ[THREADS] = "1"
    return True


def prefer_single_thread() -> bool:
    """`add_single_thread` for this process and its children (the engine process inherits it),
    applied at once where OpenCV is already loaded; False when the user's choice stands."""
    if not add_single_thread(os.environ):
        log.debug("%s=%s kept: the user's choice", THREADS, os.environ[THREADS])
        return False
    if "cv2" in sys.modules:
        sys.modules["cv2"].setNumThreads(1)
    return True
