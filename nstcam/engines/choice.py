"""Which engine runs a style fastest on this machine: measured once, remembered, explained.

On a CPU with native bf16 torch bf16 wins by far; on the common AVX2 CPU torch fp32, ONNX Runtime
fp32 and ONNX Runtime int8 are within a factor of 1.5 of each other and which leads depends on the
CPU, the network and the frame size. So `--backend auto` times the candidates that exist here on
the first launch for a network architecture and processing size, keeps the fastest under those in
the user cache (`<cache>/nstcam/backend_choice.json`, nstcam.host.choices) and says what it chose
and why. int8 is a candidate only when its picture stays within `MIN_INT8_PSNR` of fp32.

A close call is measured again: the first launch's timing shares the CPU with whatever else runs
then (a start-up, a build, a video call), and a choice made in such a burst would stick. Where the
winner leads by less than `CLOSE_CALL`, the next launches measure again, up to `CONFIRM_LAUNCHES`
timings, and each candidate keeps the best figure it reached (load only ever slows a candidate
down). Seen: on the bf16 CPU, ONNX Runtime int8 "won" by 1.04x at a first launch where, timed
quietly, torch bf16 leads by 1.33x.

Torch-free: the key is computed from the CPU's name, the packages' versions (read without importing
them) and an architecture id that the ONNX exports also carry, so a launch whose remembered choice
is ONNX Runtime never needs torch.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

from nstcam.host.choices import RememberedChoices
from trainer.devices import NO_NATIVE_BF16, cpu_name

log = logging.getLogger(__name__)

CLOSE_CALL = 1.15  # a lead below this over the runner-up is measured again on the next launches
CONFIRM_LAUNCHES = 3  # timings after which a close call stands
MIN_INT8_PSNR = 35.0  # dB against fp32: below, int8's picture visibly breaks (26 dB seen on AVX2)
ROUNDS = 3  # interleaved timing rounds, so a burst of other work hurts every candidate alike
FRAMES_PER_ROUND = 3
DROP_BELOW = 0.5  # a candidate under this fraction of the leader's frames/s after a round is timed no further
# How candidates are timed, in the key: a choice timed another way is measured again. Since 2:
# ONNX Runtime with its frames in flight (`lanes`), as the stylize thread and render run it;
# since 3: int8 exports pad on uint8 (nstcam.engines.int8_graph, 1.1-1.3x faster), so earlier
# choices, which timed the slower int8, are measured again.
TIMING = 3
# Settings that change which kernels run, so that an emulated CPU gets its own choice.
ISA_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", NO_NATIVE_BF16)

_CHOICES = RememberedChoices("backend_choice")


@dataclass(frozen=True)
class Candidate:
    """One way to run the network: a backend ("torch", "onnxruntime") and its number format."""

    backend: str
    precision: str

    @property
    def label(self) -> str:
        return f"{'ONNX Runtime' if self.backend == 'onnxruntime' else self.backend} {self.precision}"

    @classmethod
    def from_label(cls, label: str) -> Candidate:
        backend, precision = label.rsplit(" ", 1)
        return cls("onnxruntime" if backend == "ONNX Runtime" else backend, precision)


@dataclass(frozen=True)
class Choice:
    """The chosen candidate, every candidate's measured frames/s, and why others were left out."""

    chosen: Candidate
    fps: dict[str, float]
    excluded: dict[str, str] = field(default_factory=dict)
    size: str = ""
    remembered: bool = False
    timings: int = 1  # launches that measured it

    @property
    def lead(self) -> float:
        """The chosen candidate's frames/s over the runner-up's (inf when it ran alone)."""
        others = [fps for label, fps in self.fps.items() if label != self.chosen.label]
        return self.fps[self.chosen.label] / max(others) if others else float("inf")

    @property
    def settled(self) -> bool:
        """Whether to run it without measuring again: a clear lead, or a close call measured enough."""
        return self.lead >= CLOSE_CALL or self.timings >= CONFIRM_LAUNCHES

    def measured_again(self, new: Choice) -> Choice:
        """This choice and a new timing of the same candidates combined: each candidate's best figure."""
        fps = {label: max(f, self.fps.get(label, 0.0)) for label, f in new.fps.items()}
        return Choice(Candidate.from_label(max(fps, key=fps.__getitem__)), fps, new.excluded, new.size,
                      timings=self.timings + 1)

    def reason(self) -> str:
        """One line for `-v` and `nstcam doctor`."""
        timed = ", ".join(f"{label} {fps:.1f}" for label, fps in sorted(self.fps.items(), key=lambda kv: -kv[1]))
        text = f"{self.chosen.label}: the fastest at {self.size} ({timed} frames/s"
        text += ", measured on an earlier launch)" if self.remembered else ")"
        if not self.settled:
            text += f"; a close call, measured again at the next launch ({self.timings} of {CONFIRM_LAUNCHES})"
        return text + "".join(f"; {label} left out: {why}" for label, why in self.excluded.items())

    def note(self) -> str:
        """A few words for the window's status line."""
        lead = f", {self.lead:.2f}x the next" if self.lead != float("inf") else ""
        return f"auto: fastest here{lead}"

    def to_entry(self) -> dict[str, Any]:
        return {"backend": self.chosen.backend, "precision": self.chosen.precision, "size": self.size,
                "fps": {k: round(v, 2) for k, v in self.fps.items()}, "excluded": self.excluded,
                "timings": self.timings}

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> Choice | None:
        try:
            chosen = Candidate(str(entry["backend"]), str(entry["precision"]))
            fps = {str(k): float(v) for k, v in dict(entry["fps"]).items()}
            excluded = {str(k): str(v) for k, v in dict(entry.get("excluded", {})).items()}
            timings = int(entry.get("timings", CONFIRM_LAUNCHES))  # older entries: as they were
        except (KeyError, TypeError, ValueError):
            return None
        if chosen.label not in fps:
            return None
        return cls(chosen, fps, excluded, str(entry.get("size", "")), remembered=True, timings=timings)


def arch_id(config: Mapping[str, Any]) -> str:
    """A short id of a network architecture (a TransformerConfig as a dict)."""
    return hashlib.sha256(json.dumps(dict(config), sort_keys=True).encode()).hexdigest()[:12]


def model_arch_id(model: Any) -> str:
    """`arch_id` of a loaded style: a trained style's network configuration, or the one arbitrary-style
    network (MicroAST) that every instant style shares."""
    config = getattr(model, "config", None)
    return arch_id(config.to_dict() if config is not None else {"network": "microast"})


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "-"


def machine_key(threads: int) -> str:
    """What the fastest backend depends on besides the network and the frame size."""
    isa = ",".join(f"{v}={os.environ[v]}" for v in ISA_VARIABLES if os.environ.get(v))
    return (f"{cpu_name()} | {isa or 'native'} | torch {_package_version('torch')} | onnxruntime "
            f"{_package_version('onnxruntime')} | {threads} threads | timing {TIMING}")


def choice_key(arch: str, size: int, threads: int) -> str:
    return f"{machine_key(threads)} | size {size} | net {arch}"


def recall(key: str) -> Choice | None:
    entry = _CHOICES.get(key)
    return Choice.from_entry(entry) if entry else None


def remember(key: str, choice: Choice) -> None:
    _CHOICES.put(key, choice.to_entry())


def remembered_here(threads: int) -> list[tuple[str, Choice]]:
    """(network and size, Choice) for every choice remembered on this machine with `threads`."""
    prefix = machine_key(threads) + " | "
    found = []
    for key, entry in _CHOICES.entries().items():
        made = Choice.from_entry(entry) if key.startswith(prefix) else None
        if made is not None:
            found.append((key[len(prefix):], made))
    return found


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 pictures, in dB (inf when equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def int8_exclusion(psnr_db: float) -> str | None:
    """Why int8 is not a candidate, or None when its picture is close enough to fp32."""
    if psnr_db >= MIN_INT8_PSNR:
        return None
    return f"{psnr_db:.1f} dB from fp32, under {MIN_INT8_PSNR:.0f} dB (its picture breaks on this CPU)"


def time_candidates(runs: Mapping[Candidate, Callable[[int], int]], rounds: int = ROUNDS,
                    frames: int = FRAMES_PER_ROUND, clock: Callable[[], float] = time.perf_counter) -> dict[Candidate, float]:
    """Frames per second of each candidate (`runs`: `run(n)` stylizes n frames' worth as the app
    runs the candidate, n for each lane, and returns how many frames it stylized), from the median
    frame time over interleaved rounds; each candidate's first call is a warm-up. A round times
    `frames` frames' worth of each candidate as one stream: timed a frame (or a lane's pair) at a
    time, two lanes waited for the slower of each pair, which understated them by 10-25 %. A
    candidate under DROP_BELOW of the leader's frames/s after a round is timed no further: the
    first launch waits for the timing before its first frame (0.2-1.2 s less here, where torch fp32
    and often torch bf16 and ONNX Runtime fp32 are under half of int8's speed)."""
    for run in runs.values():
        run(1)
    times: dict[Candidate, list[float]] = {c: [] for c in runs}
    timing = dict(runs)
    for _ in range(rounds):
        for candidate, run in timing.items():
            t0 = clock()
            done = run(frames)
            times[candidate].append((clock() - t0) / max(1, done))
        best = min(statistics.median(times[c]) for c in timing)
        timing = {c: run for c, run in timing.items() if DROP_BELOW * statistics.median(times[c]) <= best}
    return {c: 1.0 / max(1e-9, statistics.median(t)) for c, t in times.items()}


def fastest(fps: Mapping[Candidate, float], excluded: Mapping[str, str], size: str) -> Choice:
    """The Choice of the candidate with the most frames/s."""
    if not fps:
        raise ValueError("no backend candidate to choose from")
    chosen = max(fps, key=fps.__getitem__)
    choice = Choice(chosen, {c.label: f for c, f in fps.items()}, dict(excluded), size)
    log.info("backend: %s", choice.reason())
    return choice
