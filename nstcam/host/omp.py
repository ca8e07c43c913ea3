"""OpenMP threads that sleep when they wait, for every nstcam process.

Why: libgomp's threads spin for a while at every barrier before they sleep (300,000 pause loops,
a few ms, by default). Whenever another process wants a core -- a video call beside the virtual
camera, or any other load -- the OS preempts one of torch's two threads and the other spins at
each of the network's barriers until its count runs out. PASSIVE (sleep at once) against the
default and bounded spins (GOMP_SPINCOUNT), side by side on the shared 2-core test machine at load
3.8-7.6 (issue #21; README "Beside a busy core"), torch bf16 at 320x240, frames/s, PASSIVE / spin
1,000 / 10,000 / 100,000 / default: engine alone 10.5, 7.7 / 6.8, 7.6 / 5.1 / 1.4 / 2.4, 0.7;
the window's fresh frames 6.8, 6.9 / 3.7, 4.6 / 4.3 / 2.5 / 2.6, 3.1; `nstcam render` 9.5, 7.2 /
8.8, 10.5 / 7.1 / 3.0 / 2.2, 2.0. Long spins collapse, 1,000 loops is no better than PASSIVE.
An idle machine, where a short spin could save the futex wake per barrier, was not available.
libgomp reads the policy once, when torch loads it, so this must run before torch is imported.
A policy or spin count the user set is kept (GOMP_SPINCOUNT alone: libgomp's default policy with
that bound).
"""
from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping

log = logging.getLogger(__name__)

POLICY = "OMP_WAIT_POLICY"
SPINCOUNT = "GOMP_SPINCOUNT"


def add_passive_waits(environ: MutableMapping[str, str]) -> bool:
    """Set OMP_WAIT_POLICY=PASSIVE in `environ` unless it holds a wait policy or spin count the
    user chose; True when set. (For a child process's environment, or os.environ.)"""
    if POLICY in environ or SPINCOUNT in environ:
        return False
    environ[POLICY] = "PASSIVE"
    return True


def prefer_passive_waits() -> bool:
    """`add_passive_waits` for this process and its children (the engine process inherits it);
    False when it is too late (torch already loaded) or the user's choice stands."""
    if "torch" in sys.modules:
        log.debug("%s not set: torch is already loaded", POLICY)
        return False
    return add_passive_waits(os.environ)
