"""Soak test of the live session: `python -m nstcam.measure.soak --minutes 30 --json soak.json`.

Runs what a long video call does to the app, headless: the demo scene at its 30 fps into a
`LiveSession` with the default processors, the style switched every second, a recording on, and a
virtual camera attached (to a counting pyvirtualcam backend, so no device is needed). It samples
resident memory, thread count and frame rates, then checks the recording: every frame decodes, and
its duration matches the wall time. The figures it prints are the README's Reliability figures.
"""
from __future__ import annotations

import argparse
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nstcam.launch import build_engine, load_registry, make_processors, resolve_device
from nstcam.live.recorder import Recorder
from nstcam.live.session import LiveSession
from nstcam.live.sinks import RecorderSink
from nstcam.live.virtualcam import VirtualCameraSink
from trainer.benchkit import write_json
from trainer.cliargs import number

log = logging.getLogger(__name__)

BACKEND = "nstcam-soak"


class CountingBackend:
    """A pyvirtualcam backend that only counts frames: the virtual camera's cost without a device."""

    def __init__(self, *, width: int, height: int, fps: float, fourcc: int, device: str | None, **_: Any) -> None:
        self.frames = 0

    def send(self, frame: np.ndarray) -> None:
        self.frames += 1

    def close(self) -> None:
        pass

    def device(self) -> str:
        return "soak"

    def native_fourcc(self) -> None:
        return None


def resident_mb() -> float:
    """This process's resident memory (Linux /proc; elsewhere the peak from `resource`)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def os_threads() -> int:
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))
    except (OSError, StopIteration):
        return threading.active_count()


@dataclass
class Sample:
    t: float
    rss_mb: float
    threads: int
    frames: int


def decode_check(path: Path) -> tuple[int, int]:
    """(frames decoded, decode errors) of a recording, read back with PyAV."""
    import av

    frames = errors = 0
    with av.open(str(path)) as container:
        for packet in container.demux(video=0):
            try:
                frames += len(packet.decode())
            except av.error.FFmpegError:
                errors += 1
    return frames, errors


def soak(minutes: float, out_dir: Path, switch_seconds: float = 1.0, sample_seconds: float = 5.0,
         size: int = 240, style_count: int | None = None) -> dict[str, Any]:
    import pyvirtualcam

    pyvirtualcam.register_backend(BACKEND, CountingBackend)
    registry, _ = load_registry([])
    names = registry.names()[:style_count]
    engine = build_engine(registry, resolve_device("cpu"), size, names[0])
    session = LiveSession(engine, "demo", make_processors(True))
    session.start()
    assert session.capture is not None
    session.capture.ready.wait(30)
    recorder = RecorderSink(Recorder(out_dir / "soak.mp4", session.source_fps or 30.0))
    camera = VirtualCameraSink(backend=BACKEND)
    captured0 = session.frames_captured
    session.add_sink(recorder)
    session.add_sink(camera)
    samples: list[Sample] = []
    t0 = time.monotonic()
    end = t0 + minutes * 60
    next_switch, next_sample, i = t0 + switch_seconds, t0, 0
    try:
        while (now := time.monotonic()) < end:
            if now >= next_sample:
                samples.append(Sample(now - t0, resident_mb(), os_threads(), recorder.frames_in))
                next_sample += sample_seconds
            if now >= next_switch:
                i += 1
                session.switch_style(names[i % len(names)])
                next_switch += switch_seconds
            time.sleep(max(0.0, min(next_switch, next_sample, end) - time.monotonic()))
    finally:
        wall = time.monotonic() - t0
        captured = session.frames_captured - captured0
        late = session.stop(timeout=30)
        pyvirtualcam.camera.BACKENDS.pop(BACKEND, None)  # later code must see the real devices only
    decoded, errors = decode_check(recorder.recorder.path)
    return summarise(samples, wall, late, recorder, camera, decoded, errors, i, captured)


def _rate(samples: list[Sample], first: bool) -> float:
    """fps over the first or last minute of samples."""
    if len(samples) < 2:
        return 0.0
    span = [s for s in samples if (s.t <= 60 if first else s.t >= samples[-1].t - 60)]
    span = span if len(span) >= 2 else samples[:2] if first else samples[-2:]
    return (span[-1].frames - span[0].frames) / (span[-1].t - span[0].t)


def summarise(samples: list[Sample], wall: float, late: list[str], recorder: RecorderSink,
              camera: VirtualCameraSink, decoded: int, errors: int, switches: int,
              captured: int) -> dict[str, Any]:
    running = [s for s in samples if s.frames > 0] or samples  # once frames flow: threads started
    t = np.array([s.t for s in samples]) / 60
    rss = np.array([s.rss_mb for s in samples])
    settled = t >= min(2.0, t[-1] / 2)  # after warm-up: allocator and caches settle
    slope = float(np.polyfit(t[settled], rss[settled], 1)[0]) if settled.sum() >= 3 else 0.0
    rec = recorder.recorder
    return {
        "minutes": round(wall / 60, 2),
        "style_switches": switches,
        "rss_mb_start": round(running[0].rss_mb, 1),
        "rss_mb_end": round(float(rss[-1]), 1),
        "rss_mb_max": round(float(rss.max()), 1),
        "rss_slope_mb_per_min": round(slope, 3),
        "threads_start": running[0].threads,
        "threads_end": samples[-1].threads,
        "threads_max": max(s.threads for s in samples),
        "fps_first_minute": round(_rate(samples, True), 2),
        "fps_last_minute": round(_rate(samples, False), 2),
        "frames_stylized": samples[-1].frames,
        "recording": str(rec.path),
        "recording_frames_written": rec.frames_written,
        "recording_frames_decoded": decoded,
        "recording_decode_errors": errors,
        "recording_seconds": round(rec.frames_written / rec.fps, 2),
        "recording_vs_wall": round(rec.frames_written / rec.fps / wall, 3),
        "frames_captured": captured,  # the recording holds one frame per captured frame
        "recording_vs_captured": round(rec.frames_written / max(1, captured), 3),
        "recording_frames_dropped": rec.frames_dropped,  # the encoder fell 2 s behind (live: drop, not stall)
        "virtual_camera_frames": camera.frames_sent,
        "not_stopped": late,
        "samples": [[round(s.t, 1), round(s.rss_mb, 1), s.threads, s.frames] for s in samples],
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nstcam.measure.soak", description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=number(positive=True), default=30.0, help="how long to run (default: 30)")
    p.add_argument("--out", type=Path, default=Path("soak-out"), help="folder for the recording (default: soak-out)")
    p.add_argument("--switch-seconds", type=number(positive=True), default=1.0,
                   help="seconds between style switches (default: 1)")
    p.add_argument("--sample-seconds", type=number(positive=True), default=5.0,
                   help="seconds between memory/thread samples (default: 5)")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    result = soak(args.minutes, args.out, args.switch_seconds, args.sample_seconds)
    for key, value in result.items():
        if key != "samples":
            print(f"{key:28} {value}")
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
