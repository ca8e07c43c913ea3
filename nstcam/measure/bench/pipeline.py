"""The full live pipeline (capture -> engine -> consumer), measured beside the engine alone."""
from __future__ import annotations

import argparse
import contextlib
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from nstcam.engines.torch_engine import StyleEngine
from nstcam.live.demo import DemoSource
from nstcam.live.pipeline import FrameResult
from nstcam.live.session import LiveSession
from nstcam.live.sinks import CallbackSink
from nstcam.measure.bench.runners import percentile
from trainer.benchkit import sync


def write_video(path: Path, width: int, height: int, fps: float, frames: int) -> Path:
    """Uncompressed (I420) AVI so decoding is cheap; MJPG where I420 cannot be written."""
    src = DemoSource(width, height, fps=30)
    for fourcc in ("I420", "MJPG"):
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
        if writer.isOpened():
            for i in range(frames):
                writer.write(src.frame_at(i))
            writer.release()
            return path
        writer.release()
    raise RuntimeError("OpenCV cannot write an AVI here (neither I420 nor MJPG)")


def engine_fps_in_thread(engine: StyleEngine, frames: list[np.ndarray], n: int, warm: int) -> float:
    """Engine-only fps measured from a fresh thread, as the StylizeThread runs it.

    On CPU this differs from the main thread's figure: once one thread has run torch's OpenMP
    regions, another thread's are slower (libgomp throttles its spin-waits when more OpenMP
    threads exist than cores; seen: 20-30 % on 2 cores). The pipeline is compared with both.
    """
    result: list[float] = []

    def job() -> None:
        for i in range(warm):
            engine.stylize(frames[i % len(frames)])
        sync(engine.device)
        t0 = time.perf_counter()
        for i in range(n):
            engine.stylize(frames[i % len(frames)])
        result.append(n / (time.perf_counter() - t0))

    thread = threading.Thread(target=job, name="bench-engine")
    thread.start()
    thread.join()
    return result[0] if result else 0.0


def run_pipeline(engine: StyleEngine, size: tuple[int, int], engine_fps: float, args: argparse.Namespace,
                 folder: Path, engine_thread_fps: float = 0.0, processors: Sequence[Any] = ()) -> dict[str, Any]:
    """The live session (capture thread -> stylize thread -> processors -> a counting sink) on a
    generated video paced faster than the engine."""
    w, h = size
    capture_fps = args.capture_fps or min(1000.0, max(30.0, 2.0 * engine_fps))
    bytes_per_frame = w * h * 1.5
    n_video = int(max(16, min(300, 300e6 // bytes_per_frame, capture_fps * 2)))
    video = write_video(folder / f"pipeline_{w}x{h}.avi", w, h, capture_fps, n_video)
    got: list[tuple[float, float]] = []
    lock = threading.Lock()

    def on_result(result: FrameResult) -> None:
        with lock:
            got.append((time.monotonic(), result.latency_ms))

    session = LiveSession(engine, str(video), processors)
    session.add_sink(CallbackSink(on_result, name="bench"))
    session.start()
    capture, stylize = session.capture, session.stylizer
    try:
        time.sleep(args.pipeline_warmup)
        with lock:
            n0 = len(got)
        d0, c0, t0 = capture.slot.dropped, capture.frames_captured, time.monotonic()
        time.sleep(args.pipeline_seconds)
        t1 = time.monotonic()
        d1, c1 = capture.slot.dropped, capture.frames_captured
        with lock:
            window = [item for item in got[n0:] if item[0] <= t1]
    finally:
        session.stop()
        with contextlib.suppress(OSError):
            video.unlink()
    span = t1 - t0
    lat = [ms for _, ms in window]
    mid = t0 + span / 2
    first = [ms for t, ms in window if t < mid]
    second = [ms for t, ms in window if t >= mid]
    pipeline_fps = len(window) / span if span > 0 else 0.0
    captured_fps = (c1 - c0) / span if span > 0 else 0.0
    growth = 0.0
    if len(window) >= 3:
        ts = np.array([t - t0 for t, _ in window])
        if np.ptp(ts) > 0:
            growth = float(np.polyfit(ts, np.array(lat), 1)[0])
    p95_1, p95_2 = percentile(first, 95), percentile(second, 95)
    return {
        "capture_fps_set": round(capture_fps, 2),
        "capture_fps": captured_fps,
        "pipeline_fps": pipeline_fps,
        "engine_fps": engine_fps,
        "pipeline_vs_engine": pipeline_fps / engine_fps if engine_fps > 0 else 0.0,
        "meets_90pct": engine_fps > 0 and pipeline_fps >= 0.9 * engine_fps,
        "engine_thread_fps": engine_thread_fps,
        "pipeline_vs_engine_thread": pipeline_fps / engine_thread_fps if engine_thread_fps > 0 else None,
        "thread_vs_main": engine_thread_fps / engine_fps if engine_thread_fps > 0 and engine_fps > 0 else None,
        "frames": len(window),
        "window_s": span,
        "latency_p50_ms": percentile(lat, 50),
        "latency_p95_ms": percentile(lat, 95),
        "latency_max_ms": max(lat) if lat else 0.0,
        "first_half_p95_ms": p95_1,
        "second_half_p95_ms": p95_2,
        "latency_growth_ms_per_s": growth,
        "latency_bounded": bool(lat) and p95_2 <= 1.5 * p95_1 + 5.0,
        "dropped": d1 - d0,
        "captured": c1 - c0,
        "frames_arrive_faster": (c1 - c0) > len(window),
        "errors": stylize.errors,
    }


