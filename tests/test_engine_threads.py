"""The thread tuner, fed synthetic frame times: it keeps the fastest thread count as load comes and goes."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from nstcam.engines.threads import PROBE_EVERY, ThreadTuner, thread_choices

IDLE = {2: 0.080, 1: 0.130}  # two threads win on an idle machine
BUSY = {2: 0.300, 1: 0.150}  # one core taken: two threads wait for the preempted one


def drive(tuner: ThreadTuner, cost: Callable[[int], float], frames: int) -> list[int]:
    """Run `frames` frames, each taking cost(threads used); the thread counts used, in order."""
    used = []
    for _ in range(frames):
        threads = tuner.current
        used.append(threads)
        tuner.record(cost(threads))
    return used


def test_thread_choices_halve_down_to_one() -> None:
    assert thread_choices(8) == [8, 4, 2, 1]
    assert thread_choices(3) == [3, 1]
    assert thread_choices(1) == [1]
    assert thread_choices(0) == [1]


def test_an_idle_machine_keeps_all_threads_and_trials_cost_little() -> None:
    tuner = ThreadTuner([2, 1])
    used = drive(tuner, IDLE.__getitem__, 400)
    assert tuner.settled == 2 and tuner.switches == 0
    assert used.count(1) / len(used) < 0.12  # the occasional trial of one thread


def test_a_busy_core_moves_to_one_thread_and_back_when_it_ends() -> None:
    tuner = ThreadTuner([2, 1])
    drive(tuner, IDLE.__getitem__, 60)
    used = drive(tuner, BUSY.__getitem__, 40)
    assert tuner.settled == 1
    assert used.index(1) < 10  # the slowdown triggers a trial at once, not after PROBE_EVERY frames
    used = drive(tuner, IDLE.__getitem__, PROBE_EVERY + 20)
    assert tuner.settled == 2 and tuner.switches == 2  # no restart: a later trial finds 2 faster again
    assert used[-5:] == [2] * 5


def test_noise_within_the_margin_does_not_flip_flop() -> None:
    rng = np.random.default_rng(0)
    tuner = ThreadTuner([2, 1])
    drive(tuner, lambda t: (0.100 if t == 2 else 0.103) * rng.uniform(0.9, 1.1), 600)
    assert tuner.switches <= 2


def test_the_first_frame_of_a_trial_is_not_counted() -> None:
    tuner = ThreadTuner([2, 1], probe_every=6, probe_frames=3)
    trial_frames = iter([5.0, 0.05, 0.05])  # one thread: a slow first frame (new team), then fast
    drive(tuner, lambda t: 0.1 if t == 2 else next(trial_frames), 6 + 3)
    assert tuner.settled == 1


def test_more_choices_climb_one_step_at_a_time() -> None:
    costs = {8: 0.4, 4: 0.2, 2: 0.1, 1: 0.15}
    tuner = ThreadTuner(thread_choices(8))
    drive(tuner, costs.__getitem__, 3 * (PROBE_EVERY + 10))
    assert tuner.settled == 2


def test_a_single_choice_never_trials() -> None:
    tuner = ThreadTuner([4])
    assert set(drive(tuner, lambda t: 0.1, 200)) == {4}
    with pytest.raises(ValueError):
        ThreadTuner([])
