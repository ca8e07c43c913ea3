"""OpenMP threads that sleep when they wait, for every nstcam process.

Why: libgomp's threads spin for a while at every barrier before they sleep. With a core taken by
another process (a video call beside the virtual camera) the OS preempts one of torch's two
threads and the other spins through its whole time slice at each of the network's ~50 barriers:
on the 2-core test machine, loaded, the light network ran at 0.10-0.17 frames/s with the default
or ACTIVE policy and 1.0-1.7 with PASSIVE (side by side, 2 rounds each), and the app's window
fell to 0.19-0.32x its idle rate on an AVX2 machine with one busy core (issue #21). Idle, the
waits cost a futex wake per barrier: no loss measured in the window at 640x480 (14.3 fps both).
libgomp reads the policy once, when torch loads it, so this must run before torch is imported;
a policy the user set is kept.
"""
from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)

POLICY = "OMP_WAIT_POLICY"
SPINCOUNT = "GOMP_SPINCOUNT"


def prefer_passive_waits() -> bool:
    """Set OMP_WAIT_POLICY=PASSIVE unless the user chose a policy; False when it is too late
    (torch already loaded) or the user's policy stands."""
    if POLICY in os.environ or SPINCOUNT in os.environ:
        return False
    if "torch" in sys.modules:
        log.debug("%s not set: torch is already loaded", POLICY)
        return False
    os.environ[POLICY] = "PASSIVE"  # the engine process inherits it
    return True
