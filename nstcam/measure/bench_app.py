"""What the user gets, side by side in one run: `python -m nstcam.measure.bench_app --json docs/bench_app.json`.

For each processing size (240 and 480, on the demo scene's 640x480 frames) and each placement of
the CPU engine (a thread of the app, or the engine process), rounds interleave:

* engine: `StyleEngine.stylize` on the main thread of this process, the ceiling;
* pipeline: the live session (capture at 60 fps -> stylize thread -> a counting sink);
* window: `nstcam --camera demo --benchmark-seconds S` in its own process, offscreen, its
  BENCHMARK_JSON line (stylized frames/s of the 30 the camera gives) and its time from process
  start to the first stylized frame on screen (`-v`); with the engine in a thread (off) or in
  its process (on), once more without the stabilizer (its cost), and in a thread with
  OMP_WAIT_POLICY=PASSIVE (OpenMP threads sleep at once instead of spinning). These and render
  share one app cache, filled before the rounds, as on any launch after the first; the first
  launch (an empty cache: the CPU memory format is timed on the first frame) is measured alone;
* render: `nstcam render` of a 240-frame clip minus a 1-frame clip (steady fps; the 1-frame run
  is the start-up time).

Every figure is a median over `--rounds`; each is also given as a ratio to the engine measured in
the same round. On a 2-core machine run nothing else meanwhile.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nstcam.live.demo import DemoSource
from nstcam.launch import build_engine, load_registry, resolve_device
from nstcam.live.session import LiveSession
from nstcam.live.sinks import CallbackSink
from trainer.benchkit import write_json
from trainer.cliargs import int_at_least, number

DEMO_SIZE = (640, 480)
FIRST_FRAME = re.compile(r"first stylized frame on screen ([\d.]+) s")


def write_clip(path: Path, frames: int, fps: float = 30.0) -> Path:
    import cv2

    src = DemoSource(*DEMO_SIZE)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, DEMO_SIZE)
    for i in range(frames):
        writer.write(src.frame_at(i))
    writer.release()
    return path


def engine_fps(engine, seconds: float) -> float:
    frames = [DemoSource(*DEMO_SIZE).frame_at(i) for i in range(8)]
    for frame in frames[:3]:
        engine.stylize(frame)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        engine.stylize(frames[n % 8])
        n += 1
    return n / (time.perf_counter() - t0)


def pipeline_fps(engine, clip: Path, seconds: float) -> float:
    got: list[float] = []
    lock = threading.Lock()

    def count(_result) -> None:
        with lock:
            got.append(time.monotonic())

    session = LiveSession(engine, str(clip))
    session.add_sink(CallbackSink(count, name="bench"))
    session.start()
    try:
        time.sleep(1.0)  # run-in
        t0 = time.monotonic()
        time.sleep(seconds)
        t1 = time.monotonic()
    finally:
        session.stop()
    return sum(1 for t in got if t0 <= t <= t1) / (t1 - t0)


def nstcam(*args: str, env: dict[str, str] | None = None, timeout: float = 900) -> tuple[float, str]:
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "nstcam", *args], capture_output=True, text=True,
                         timeout=timeout, env=env)
    if run.returncode != 0:
        raise RuntimeError(f"nstcam {' '.join(args)} failed: {run.stderr.strip()[-500:]}")
    return time.perf_counter() - t0, run.stdout + run.stderr


def window(size: int, engine_process: str, seconds: float, style: str, stabilize: bool = True,
           **extra_env: str) -> dict[str, float]:
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen"), **extra_env}
    _, out = nstcam("--camera", "demo", "--style", style, "--size", str(size), "--engine-process", engine_process,
                    "--benchmark-seconds", str(seconds), "--no-crossfade", "-v",
                    *(() if stabilize else ("--no-stabilize",)), env=env)
    result = json.loads(out.split("BENCHMARK_JSON ", 1)[1].splitlines()[0])
    first = FIRST_FRAME.search(out)
    return {"stylize_fps": result["stylize_fps"], "first_frame_s": float(first.group(1)) if first else float("nan")}


def render(size: int, clip: Path, one: Path, folder: Path, style: str, **extra_env: str) -> dict[str, float]:
    args, env = ("--style", style, "--size", str(size)), {**os.environ, **extra_env}
    t_one, _ = nstcam("render", str(one), "-o", str(folder / f"one-{size}.mp4"), *args, env=env)
    t_all, _ = nstcam("render", str(clip), "-o", str(folder / f"all-{size}.mp4"), *args, env=env)
    for f in folder.glob("*.mp4"):
        f.unlink()
    return {"render_fps": 239 / max(1e-6, t_all - t_one), "render_start_s": t_one}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from nstcam.engines.process import ProcessEngine

    registry, _ = load_registry([])
    device = resolve_device("cpu")
    rows: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clip, one = write_clip(folder / "clip.avi", 240), write_clip(folder / "one.avi", 1)
        fast = write_clip(folder / "fast.avi", 240, fps=120.0)
        cache = {"NSTCAM_CACHE_DIR": str(folder / "cache")}
        for size in args.sizes:
            window(size, "on", 1.0, args.style, **cache)  # what later launches find in the cache
        for _ in range(args.rounds):
            for size in args.sizes:
                engine = build_engine(registry, device, size, args.style)
                proc = ProcessEngine(build_engine(registry, device, size, args.style))
                try:
                    while not proc.in_child:
                        proc.stylize(DemoSource(*DEMO_SIZE).frame_at(0))  # in-process until the child is up
                    row = {"engine_fps": engine_fps(engine, args.seconds),
                           "engine_process_fps": engine_fps(proc, args.seconds),
                           "pipeline_fps": pipeline_fps(engine, fast, args.seconds),
                           "pipeline_process_fps": pipeline_fps(proc, fast, args.seconds)}
                finally:
                    proc.close()
                for placement in ("off", "on"):
                    got = window(size, placement, args.seconds, args.style, **cache)
                    row[f"window_{placement}_fps"] = got["stylize_fps"]
                    row[f"window_{placement}_first_frame_s"] = got["first_frame_s"]
                row["window_on_first_launch_first_frame_s"] = window(
                    size, "on", 1.0, args.style, NSTCAM_CACHE_DIR=tempfile.mkdtemp(dir=folder))["first_frame_s"]
                row["window_on_unstabilized_fps"] = window(size, "on", args.seconds, args.style, False,
                                                           **cache)["stylize_fps"]
                row["window_off_passive_fps"] = window(size, "off", args.seconds, args.style,
                                                       OMP_WAIT_POLICY="PASSIVE", **cache)["stylize_fps"]
                row.update(render(size, clip, one, folder, args.style, **cache))
                rows.setdefault(str(size), []).append(row)
    return {size: summarise(runs) for size, runs in rows.items()}


def summarise(runs: list[dict[str, float]]) -> dict[str, float]:
    keys = runs[0].keys()
    out = {k: round(statistics.median(r[k] for r in runs), 2) for k in keys}
    for k in keys:
        if k.endswith("fps") and k != "engine_fps":
            out[k.replace("_fps", "_vs_engine")] = round(
                statistics.median(r[k] / r["engine_fps"] for r in runs), 2)
    out["rounds"] = len(runs)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nstcam.measure.bench_app", description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int_at_least(16), nargs="+", default=[240, 480],
                   help="processing sizes (short side) to measure (default: 240 480)")
    p.add_argument("--rounds", type=int_at_least(1), default=3, help="interleaved rounds (default: 3)")
    p.add_argument("--seconds", type=number(positive=True), default=6.0,
                   help="measured seconds per figure and round (default: 6)")
    p.add_argument("--style", default="monet", help="bundled style to run (default: monet)")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    args = p.parse_args(argv)
    result = measure(args)
    print(json.dumps(result, indent=1))
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
