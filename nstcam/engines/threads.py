"""The engine's intra-op thread count, adapted while frames run.

Why: with every core in use, a network split over N threads waits at each layer for the slowest
of them. When another process takes a core (a video call beside the virtual camera), the OS
preempts one of the engine's threads and the others wait (or spin) for it at every barrier: on
2 cores the light network fell to 0.2-0.4x its idle rate with 2 threads, against 0.7-0.85x on one
thread. No setting is right for both cases, so the tuner measures: it runs the current choice,
now and then tries its neighbours for a few frames, and keeps whichever gives the shortest median
frame time. A clear change in the current choice's frame time (contention starting or ending)
triggers a trial at once, so the engine follows the machine's load within a second or two and
returns to all threads when the other process stops, without a restart.

It only counts and decides; each engine applies the choice (torch.set_num_threads, or one ONNX
Runtime session per choice) and times only the live stream, the frames at the engine's own size:
a gallery thumbnail or a snapshot is a different amount of work, and one in a trial decided it
(a 60 px thumbnail at 16 ms "beat" 36 ms live frames, and the window ran on one thread). Torch-free.
"""
from __future__ import annotations

import logging
import statistics
from collections import deque
from collections.abc import Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

PROBE_EVERY = 40  # frames on the current choice between two trials of its neighbours
PROBE_FRAMES = 4  # frames per trial; the first is discarded (new thread team, oneDNN primitives)
RECENT = 6  # frames whose median stands for the current choice
SHIFT = 1.3  # a change of the current choice's median by this factor (either way) triggers a trial
MARGIN = 0.05  # a neighbour must be this much faster to be taken


def thread_choices(threads: int) -> list[int]:
    """The thread counts worth trying for `threads` cores' worth, fastest-when-idle first:
    threads, then halving down to 1 (e.g. 8, 4, 2, 1)."""
    choices = [max(1, threads)]
    while choices[-1] > 1:
        choices.append(choices[-1] // 2)
    return choices


class ThreadTuner(Generic[T]):
    """Picks, among ordered `choices`, the one with the shortest frame time now.

    Call `current` before a frame and `record(seconds)` after it, from one thread at a time
    (the engines call both under their frame lock); frames of other work run with `settled` and
    are not recorded.
    """

    def __init__(self, choices: Sequence[T], probe_every: int = PROBE_EVERY,
                 probe_frames: int = PROBE_FRAMES, label: str = "threads") -> None:
        if not choices:
            raise ValueError("the tuner needs at least one choice")
        self.choices = list(choices)
        self.probe_every = probe_every
        self.probe_frames = probe_frames
        self.label = label
        self._index = 0
        self._recent: deque[float] = deque(maxlen=RECENT)
        self._reference: float | None = None  # the current choice's median when last decided
        self._since_probe = 0
        self._trial: list[int] = []  # neighbours still to try in this trial
        self._trial_times: list[float] = []
        self._trial_results: dict[int, float] = {}
        self.switches = 0

    @property
    def current(self) -> T:
        """The choice to run the next frame with."""
        return self.choices[self._trial[0] if self._trial else self._index]

    @property
    def settled(self) -> T:
        """The choice the tuner keeps between trials."""
        return self.choices[self._index]

    def record(self, seconds: float) -> None:
        """The frame just run with `current` took `seconds`."""
        if len(self.choices) == 1:
            return
        if self._trial:
            self._record_trial(seconds)
            return
        self._recent.append(seconds)
        self._since_probe += 1
        if len(self._recent) < RECENT:
            return
        median = statistics.median(self._recent)
        if self._reference is None:
            self._reference = median
        shifted = not (1 / SHIFT < median / self._reference < SHIFT)
        if shifted or self._since_probe >= self.probe_every:
            self._start_trial()

    def _start_trial(self) -> None:
        self._trial = [i for i in (self._index + 1, self._index - 1) if 0 <= i < len(self.choices)]
        self._trial_times = []
        self._trial_results = {}

    def _record_trial(self, seconds: float) -> None:
        self._trial_times.append(seconds)
        if len(self._trial_times) < self.probe_frames:
            return
        self._trial_results[self._trial.pop(0)] = statistics.median(self._trial_times[1:])
        self._trial_times = []
        if not self._trial:
            self._decide()

    def _decide(self) -> None:
        here = statistics.median(self._recent)
        best, best_time = min(self._trial_results.items(), key=lambda kv: kv[1])
        if best_time < here * (1 - MARGIN):
            log.info("%s %s -> %s: %.1f ms a frame instead of %.1f ms", self.label, self.choices[self._index],
                     self.choices[best], best_time * 1e3, here * 1e3)
            self._index = best
            self.switches += 1
            self._recent.clear()
            self._reference = None
        else:
            self._reference = here
        self._since_probe = 0
