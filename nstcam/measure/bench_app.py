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
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nstcam.host.omp import add_passive_waits
from nstcam.host.opencv_threads import add_single_thread
from nstcam.live.demo import DemoSource
from nstcam.launch import build_engine, load_registry, resolve_device
from nstcam.live.pipeline import engine_lanes, frames_in_flight, lane_pool, stream
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
    """`engine`'s frames/s alone, from this thread, or with as many frames in flight as render
    keeps on it (`engine_lanes`: ONNX Runtime on a CPU runs two at once; `frames_in_flight`)."""
    frames = [DemoSource(*DEMO_SIZE).frame_at(i) for i in range(8)]
    lanes = engine_lanes(engine)
    for frame in frames[:3]:
        engine.stylize(frame)
    t0 = time.perf_counter()
    with lane_pool(lanes) as pool:
        n = stream(pool, engine.stylize, itertools.takewhile(lambda _: time.perf_counter() - t0 < seconds,
                                                             itertools.cycle(frames)), frames_in_flight(lanes))
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
           extra_args: Sequence[str] = (), camera: str = "demo", **extra_env: str) -> dict[str, float]:
    """One window run's figures. It starts from the default settings, in a settings folder of its
    own: the window remembers its toggles (in-between frames, the stabilizer...), and a run must
    measure the flags it is given, not what the user or the previous run left."""
    with tempfile.TemporaryDirectory(prefix="nstcam-settings-") as settings:
        env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen"),
               "NSTCAM_CONFIG_DIR": settings, **extra_env}
        _, out = nstcam("--camera", camera, "--style", style, "--size", str(size), "--engine-process", engine_process,
                        "--benchmark-seconds", str(seconds), "--no-crossfade", "-v",
                        *(() if stabilize else ("--no-stabilize",)), *extra_args, env=env)
    result = json.loads(out.split("BENCHMARK_JSON ", 1)[1].splitlines()[0])
    first = FIRST_FRAME.search(out)
    return {"stylize_fps": result["stylize_fps"], "display_fps": result["display_fps"],
            "capture_fps": result["capture_fps"], "first_frame_s": float(first.group(1)) if first else float("nan")}


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


# Host conditions (`--conditions`): what most users have (AVX2, no native bf16), emulated on an
# AVX-512 CPU, and a core taken by another process (a video call beside the virtual camera).
AVX2_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "NSTCAM_NO_NATIVE_BF16": "1"}
CONDITIONS = {"idle": ({}, False), "busy core": ({}, True), "AVX2": (AVX2_ENV, False),
              "AVX2 + busy core": (AVX2_ENV, True)}
ENGINES = ("torch:bf16", "torch:fp32", "onnxruntime:fp32", "onnxruntime:int8")
# Window configurations: engine placement, extra flags, and whether the camera is the fast one.
WINDOWS = {"default": ("on", (), False), "60 fps camera": ("on", (), True),
           "torch process": ("on", ("--backend", "torch"), False),
           "torch in-process": ("off", ("--backend", "torch"), False),
           "onnxruntime": ("off", ("--backend", "onnxruntime"), False)}
# The demo camera gives 30 frames/s, and an engine faster than that cannot stylize more of them.
# A webcam mode of 60 (a looping clip of the demo scene) makes the window engine-bound here,
# so its fresh stylizations can be held to the engine alone while it shows every camera frame.
FAST_CAMERA_FPS = 60.0


def engine_alone(spec: str, size: int, seconds: float, style: str, env: dict[str, str]) -> float | None:
    """One engine's fresh frames/s in its own process (so the condition's environment applies
    from the start), on its main thread or with its frames in flight as the app runs it (`engine_fps`);
    None where it does not exist (bf16 not native)."""
    child_env = {**os.environ, **env}
    add_passive_waits(child_env)  # as the app's CLI does
    add_single_thread(child_env)
    run = subprocess.run([sys.executable, "-m", "nstcam.measure.bench_app", "--engine-alone", spec,
                          "--sizes", str(size), "--seconds", str(seconds), "--style", style],
                         capture_output=True, text=True, timeout=900, env=child_env)
    if run.returncode != 0:
        raise RuntimeError(f"engine {spec} failed: {run.stderr.strip()[-500:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])["fps"]


def run_engine_alone(spec: str, size: int, seconds: float, style: str) -> float | None:
    from trainer.devices import cpu_bf16_supported

    backend, precision = spec.split(":")
    if precision == "bf16" and not cpu_bf16_supported():
        return None
    registry, _ = load_registry([], backend)
    return engine_fps(build_engine(registry, resolve_device("cpu", backend), size, style, precision, backend), seconds)


class BusyCore:
    """`python -c "while True: pass"` for the duration of a `with` block (or nothing)."""

    def __init__(self, busy: bool) -> None:
        self.busy = busy
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> BusyCore:
        if self.busy:
            self.process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()


def measure_conditions(args: argparse.Namespace) -> dict[str, Any]:
    """Per host condition: each engine alone, the window per configuration, render (default)."""
    size = args.sizes[0]
    rows: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clip, one = write_clip(folder / "clip.avi", 240), write_clip(folder / "one.avi", 1)
        fast_camera = write_clip(folder / "camera60.avi", 10 * int(FAST_CAMERA_FPS), fps=FAST_CAMERA_FPS)
        cache = {"NSTCAM_CACHE_DIR": str(folder / "cache")}
        for env, _ in {id(e): (e, b) for e, b in CONDITIONS.values()}.values():  # first launches, idle
            window(size, "on", 1.0, args.style, **cache, **env)
        for _ in range(args.rounds):
            for name, (env, busy) in CONDITIONS.items():
                row: dict[str, float] = {}
                with BusyCore(busy):
                    for spec in ENGINES:
                        fps = engine_alone(spec, size, args.seconds, args.style, {**cache, **env})
                        if fps is not None:
                            row[f"engine {spec}"] = fps
                    for config, (placement, extra, fast) in ((c, WINDOWS[c]) for c in args.configs):
                        got = window(size, placement, args.seconds, args.style, extra_args=extra,
                                     camera=str(fast_camera) if fast else "demo", **cache, **env)
                        row.update({f"window {config} {k}": v for k, v in got.items()})
                    row.update(render(size, clip, one, folder, args.style, **cache, **env))
                row["fastest engine"] = max(v for k, v in row.items() if k.startswith("engine "))
                rows.setdefault(name, []).append(row)
                print(f"{name}: {json.dumps(row)}", file=sys.stderr, flush=True)  # a long run's progress
    return {"size": size, "conditions": summarise_conditions(rows)}


def summarise_conditions(rows: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Medians per condition, and per-round ratios (the VM's speed drifts between rounds, so a
    ratio is taken within its round before the median): the window's fresh stylizations to the
    fastest engine alone, to the lower of it and the camera's rate, render to the fastest engine,
    and each condition to its idle row ("AVX2" for the AVX2 ones)."""
    result = {name: {k: round(statistics.median(r[k] for r in runs), 2) for k in runs[0]} for name, runs in rows.items()}

    def ratio(runs: list[dict[str, float]], of: Callable[[dict[str, float]], float]) -> float:
        return round(statistics.median(of(r) for r in runs), 2)

    for name, runs in rows.items():
        out = result[name]
        for config in [k[len("window "):-len(" stylize_fps")] for k in runs[0] if k.endswith(" stylize_fps")]:
            fresh, camera = f"window {config} stylize_fps", f"window {config} capture_fps"
            out[f"window {config} vs fastest engine"] = ratio(runs, lambda r: r[fresh] / r["fastest engine"])
            out[f"window {config} vs camera or engine"] = ratio(
                runs, lambda r: r[fresh] / min(r[camera], r["fastest engine"]))
            out[f"window {config} shown vs camera"] = ratio(
                runs, lambda r: r[f"window {config} display_fps"] / r[camera])
        out["render vs fastest engine"] = ratio(runs, lambda r: r["render_fps"] / r["fastest engine"])
        idle = rows["AVX2" if name.startswith("AVX2") else "idle"]
        for key in [k for k in runs[0] if k.endswith("stylize_fps") or k.startswith("engine ")]:
            out[f"{key} vs idle"] = round(statistics.median(r[key] / i[key] for r, i in zip(runs, idle)), 2)
        out["rounds"] = len(runs)
    return result


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
    p.add_argument("--conditions", action="store_true",
                   help="instead: a row per host condition (idle, one busy core, emulated AVX2 without "
                   "native bf16, both) at the first --sizes size: each engine alone, the window per "
                   "configuration (default; default with a 60 fps camera, a looping clip of the demo "
                   "scene, where the engine and not the camera limits it; torch in its process or "
                   "in-process; onnxruntime; fresh stylize_fps and display_fps, first stylized frame) "
                   "and render, with ratios to the fastest engine, to the lower of it and the "
                   "camera's frame rate (the window cannot stylize more frames than the camera "
                   "gives), of frames shown to the camera's, and to the idle row")
    p.add_argument("--configs", nargs="+", choices=list(WINDOWS), default=list(WINDOWS),
                   help="(with --conditions) the window configurations to run (default: all)")
    p.add_argument("--engine-alone", metavar="BACKEND:PRECISION", choices=ENGINES,
                   help="(used by --conditions) time one engine in this process and print its frames/s")
    args = p.parse_args(argv)
    if args.engine_alone:
        print(json.dumps({"fps": run_engine_alone(args.engine_alone, args.sizes[0], args.seconds, args.style)}))
        return 0
    result = measure_conditions(args) if args.conditions else measure(args)
    print(json.dumps(result, indent=1))
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
