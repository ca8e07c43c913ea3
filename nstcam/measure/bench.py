"""Benchmark of the live path: `python -m nstcam.measure.bench`.

What it measures, for each device (cpu; cuda when available) and precision (cpu: fp32, plus bf16
where the CPU has native bf16; cuda: fp16 and fp32), at each frame size:

* engine: `StyleEngine.stylize` at full frame resolution (size=None), from a numpy BGR frame in
  host memory to an RGB uint8 frame in host memory: throughput (frames/s, the median of
  `--repeats` runs of `--frames` frames) and per-frame latency p50/p95 (pooled over the runs);
* naive: the same network and frames run the way the PyTorch fast_neural_style example stylizes
  (PIL image from the array, `ToTensor()` + `Lambda(x.mul(255))` per frame, fp32, pageable
  `.to(device)`, forward, synchronous `.cpu()`, clamp, uint8 via PIL); every engine figure gets
  its ratio to this. The runs of all variants are interleaved, so load that comes and goes on a
  shared machine hits them alike;
* pipeline: the app's LiveSession (nstcam.live.session: CaptureThread on a generated video, paced
  faster than the engine can go -> StylizeThread -> a sink counting results): pipeline fps against engine-only fps (goal >=
  90 %), capture-to-result latency p50/p95, the capture slot's drops, and latency in the first
  vs the second half of the window (it must not grow: the slot keeps only the newest frame).
  Engine-only fps is also measured from a fresh thread, as the StylizeThread runs: on CPU a
  second thread running torch's OpenMP regions is slower than the first (see
  `engine_fps_in_thread`), which is not the pipeline's doing;
* parity: PSNR (dB) of every variant's output against a strict fp32 eager reference (TF32 off)
  on the same frames (aim: >= 40 dB for fp16 / bf16 / compiled).

`--stability [its flags]` instead runs the temporal stability report (`python -m nstcam.measure.stability
--help`): warp error, strength and edge alignment of every style with and without the stabilizer.

`--compare-archs` instead times candidate light TransformerNet configurations on the CPU at
320x240 and 640x480 against the CPU targets (24 fps and 8 fps).

The model is a bundled style (`--style`, default the first; the variant the app would pick for
each device) or, with `--arch width=16,res_blocks=5,outer_kernel=9,separable=0`, a randomly
initialised network of that shape (timing does not depend on the weights).

Notes on the naive loop: the example's networks take and return 0-255 images; nstcam's take and
return [0, 1], so the naive loop wraps the network in a x/255 ... *255 scaling (two element-wise
passes, negligible next to the network) to keep the same weights meaningful. It runs with cuDNN
autotuning off, as the example leaves it.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import math
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from nstcam.live.demo import DemoSource, calibration_frames
from nstcam.engines.torch_engine import StyleEngine, default_precision
from nstcam.host.malloc import keep_freed_memory
from nstcam.live.pipeline import FrameResult
from nstcam.live.session import LiveSession
from nstcam.live.sinks import CallbackSink
from trainer.benchkit import arch_label, cuda_flags, parse_arch, sync, table, write_json
from trainer.cliargs import frame_size
from trainer.devices import cpu_bf16_supported, cpu_name
from trainer.stylefile import StyleModel
from trainer.transformer import TransformerConfig, TransformerNet

log = logging.getLogger("nstcam.measure.bench")

ALL_SIZES: tuple[tuple[int, int], ...] = ((320, 240), (640, 480), (1280, 720), (1920, 1080))
CPU_DEFAULT_SIZES: tuple[tuple[int, int], ...] = ((320, 240), (640, 480))
CPU_TARGETS: dict[tuple[int, int], float] = {(320, 240): 24.0, (640, 480): 8.0}
# The bundled styles' CPU ("light") variant and Johnson's network: used when no style is found.
LIGHT_CONFIG = TransformerConfig(width=16, res_blocks=5, outer_kernel=9, separable=False)
FULL_CONFIG = TransformerConfig()
ARCH_CANDIDATES: tuple[TransformerConfig, ...] = (
    TransformerConfig(16, 5, 9, False),
    TransformerConfig(16, 5, 5, False),
    TransformerConfig(16, 5, 5, True),
    TransformerConfig(24, 4, 5, True),
    TransformerConfig(32, 5, 9, False),
)
DISTINCT_FRAMES = 8  # frames cycle through this many different images
PSNR_CAP = 100.0  # reported for identical outputs (JSON has no infinity)
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")


# ----------------------------------------------------------------------------------- helpers


parse_size = frame_size(16)


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = [parse_size(p.strip()) for p in text.split(",") if p.strip()]
    if not sizes:
        raise argparse.ArgumentTypeError("no sizes given")
    return sizes


def size_label(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def random_style_model(cfg: TransformerConfig, seed: int = 0) -> StyleModel:
    """A randomly initialised network whose output has texture (not a flat image): the instance
    norms' scales and shifts are randomised, the output is centred at mid-grey."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = TransformerNet(cfg)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.InstanceNorm2d):
                module.weight.copy_(torch.rand(module.weight.shape, generator=gen) * 1.5 + 0.25)
                module.bias.copy_(torch.rand(module.bias.shape, generator=gen) - 0.5)
        last = net.decoder[-1][1]
        last.weight.mul_(0.5)
        last.bias.fill_(0.0 if getattr(cfg, "bounded_output", False) else 0.5)  # mid-grey either way
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    return StyleModel(config=cfg, state_dict=state, meta={"name": f"random {arch_label(cfg)}", "variant": "random"})


def count_macs(cfg: TransformerConfig, width: int, height: int) -> float:
    """Multiply-accumulates of one forward pass at width x height (convolutions only)."""
    total = 0

    def hook(module: nn.Conv2d, _inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1]
        total += out.numel() * (module.in_channels // module.groups) * k

    for device in ("meta", "cpu"):  # meta costs nothing; a real (small) pass if an op lacks a meta kernel
        total = 0
        net = TransformerNet(cfg).to(device)
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                m.register_forward_hook(hook)
        try:
            with torch.no_grad():
                net(torch.zeros(1, 3, height, width, device=device))
            return float(total)
        except Exception:
            continue
    return float("nan")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0:
        return PSNR_CAP
    return min(PSNR_CAP, 10.0 * math.log10(255.0 ** 2 / mse))


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else 0.0


def make_frames(width: int, height: int, n: int = DISTINCT_FRAMES) -> list[np.ndarray]:
    """Distinct BGR frames of the demo scene (sky, sun, hills, a face, text)."""
    src = DemoSource(width, height, fps=30)
    return [src.frame_at(i * 11) for i in range(n)]


# ----------------------------------------------------------------------------------- runners


class BenchEngine(StyleEngine):
    """StyleEngine at a given precision, its nets optionally wrapped in torch.compile (static
    shapes: one compilation per frame size, done during warm-up), for comparisons."""

    def __init__(self, models: dict[str, StyleModel], device: str | torch.device, precision: str,
                 compile_mode: str | None = None) -> None:
        self._compile_mode = compile_mode
        super().__init__(models, device=device, size=None, precision=precision)

    def _load(self, device: torch.device) -> None:
        super()._load(device)
        if self._compile_mode:
            mode = None if self._compile_mode == "default" else self._compile_mode
            self._nets = {k: torch.compile(n, mode=mode, dynamic=False) for k, n in self._nets.items()}  # type: ignore[misc]


class _Scale255(nn.Module):
    """The example's convention: 0-255 in, 0-255 out."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x / 255.0) * 255.0


class NaiveStylizer:
    """A per-frame loop written the way the PyTorch fast_neural_style example stylizes an image."""

    def __init__(self, model: StyleModel, device: torch.device) -> None:
        from PIL import Image
        from torchvision import transforms

        self._image = Image
        self.device = device
        self.model = _Scale255(model.build("cpu")).to(device).eval()
        self.content_transform = transforms.Compose([
            transforms.ToTensor(),
            transforms.Lambda(lambda x: x.mul(255)),
        ])

    def __call__(self, frame_bgr: np.ndarray) -> np.ndarray:
        Image = self._image
        content_image = Image.fromarray(cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB))
        content_image = self.content_transform(content_image)
        content_image = content_image.unsqueeze(0).to(self.device)
        with torch.no_grad():
            output = self.model(content_image).cpu()
        data = output[0]
        img = data.clone().clamp(0, 255).numpy()
        img = img.transpose(1, 2, 0).astype("uint8")
        return np.asarray(Image.fromarray(img))


@dataclass
class Runner:
    """One way of turning a BGR frame into an RGB frame, with its timings."""

    name: str  # "engine" | "naive"
    precision: str
    fn: Callable[[np.ndarray], np.ndarray]
    device: torch.device
    flags: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    engine: StyleEngine | None = None
    fps_runs: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.name} {self.precision}"

    def reset(self) -> None:
        self.fps_runs, self.latencies = [], []

    def warm(self, frames: list[np.ndarray], n: int) -> None:
        with self.flags():
            if self.engine is not None:
                h, w = frames[0].shape[:2]
                self.engine.warmup(w, h)  # cuDNN autotuning / CPU memory format / compilation
            for i in range(max(1, n) if self.engine is None else n):
                self.fn(frames[i % len(frames)])
            sync(self.device)

    def run(self, frames: list[np.ndarray], n: int) -> None:
        lat = []
        with self.flags():
            sync(self.device)
            start = time.perf_counter()
            for i in range(n):
                t0 = time.perf_counter()
                self.fn(frames[i % len(frames)])  # returns host memory: already synchronised
                lat.append(time.perf_counter() - t0)
            total = time.perf_counter() - start
        self.fps_runs.append(n / total)
        self.latencies.extend(lat)

    def summary(self) -> dict[str, float]:
        return {
            "fps": statistics.median(self.fps_runs) if self.fps_runs else 0.0,
            "p50_ms": percentile(self.latencies, 50) * 1e3,
            "p95_ms": percentile(self.latencies, 95) * 1e3,
            "runs_fps": [round(v, 3) for v in self.fps_runs],
        }


# ----------------------------------------------------------------------------------- model choice


def choose_model(args: argparse.Namespace, device_type: str) -> tuple[str, StyleModel, dict[str, Any]]:
    """(style name, model, description) for `device_type`, as the app would pick it."""
    if args.arch:
        cfg = args.arch[0]
        model = random_style_model(cfg, args.seed)
        return model.name, model, {"source": "random init (--arch)", "arch": arch_label(cfg), **cfg.to_dict()}
    from nstcam.registry import StyleRegistry, bundled_styles_dir

    folder = Path(args.styles_dir) if args.styles_dir else bundled_styles_dir()
    registry = StyleRegistry.discover([folder])
    names = registry.names()
    if not names:
        if args.style:
            raise SystemExit(f"nstcam.measure.bench: error: no styles in {folder}; cannot use --style {args.style}")
        cfg = FULL_CONFIG if device_type == "cuda" else LIGHT_CONFIG
        log.warning("no styles in %s: timing a randomly initialised %s network", folder, arch_label(cfg))
        model = random_style_model(cfg, args.seed)
        return model.name, model, {"source": f"random init (no styles in {folder})", "arch": arch_label(cfg),
                                   **cfg.to_dict()}
    name = args.style or names[0]
    try:
        entry = registry.choose(name, device_type)
    except KeyError as exc:
        raise SystemExit(f"nstcam.measure.bench: error: {exc.args[0]}") from None
    cfg = entry.model.config
    return name, entry.model, {"source": str(entry.path), "variant": entry.variant, "arch": arch_label(cfg),
                               **cfg.to_dict()}


def cpu_precisions(args: argparse.Namespace) -> list[str]:
    """fp32 first (the base of the "vs 1st prec" ratio), then bf16 when asked for or native."""
    return ["fp32"] + (["bf16"] if args.cpu_bf16 == "on" or (args.cpu_bf16 == "auto" and cpu_bf16_supported()) else [])


def precisions_for(device: torch.device, args: argparse.Namespace) -> list[str]:
    precs = ["fp16", "fp32"] if device.type == "cuda" else cpu_precisions(args)
    if args.compile != "off":  # the app's precision compiled; on CPU bf16 too
        precs += [f"{p}+compile" for p in (precs if device.type == "cpu" else precs[:1])]
    return precs


def make_engine(models: dict[str, StyleModel], device: torch.device, precision: str, compile_mode: str) -> BenchEngine:
    """"fp16" / "fp32" / "bf16", optionally suffixed "+compile"."""
    base, _, compiled = precision.partition("+")
    return BenchEngine(models, device, base, compile_mode if compiled else None)


# ----------------------------------------------------------------------------------- reference


@torch.no_grad()
def reference_outputs(model: StyleModel, frames: list[np.ndarray], device: torch.device) -> list[np.ndarray]:
    """Strict fp32 eager outputs (TF32 off, contiguous): the parity reference."""
    net = model.build(device, torch.float32)
    outs = []
    with cuda_flags(device, benchmark=False, tf32=False):
        for frame in frames:
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            x = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).float().div(255.0).contiguous().to(device)
            y = net(x)[0].clamp(0, 1).mul(255.0).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
            outs.append(y)
    return outs


# ----------------------------------------------------------------------------------- pipeline


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


# ----------------------------------------------------------------------------------- the benchmark


def _check_engine(runner: Runner, device: torch.device) -> None:
    """An engine that recovered from a GPU fault (moved to CPU, shrank its frames) measures
    something else: its figures are dropped and the notice reported instead."""
    eng = runner.engine
    if eng is None:
        return
    if eng.device.type != device.type or getattr(eng, "processing_scale", 1.0) != 1.0 or eng.notices:
        raise RuntimeError("the engine recovered from a fault, figures dropped: " + "; ".join(eng.notices))


def onnx_runners(model: StyleModel, name: str, tmp: Path, out: dict[str, Any]) -> list[Runner]:
    """The same network on ONNX Runtime (the torch-free backend), fp32 and static int8, where
    onnxruntime is installed (backend "onnxruntime" in the rows)."""
    try:
        from nstcam.engines.ort import SUFFIXES, OnnxStyleEngine
        from nstcam.engines.onnx_export import export_model
    except ImportError as exc:
        out["errors"].append(f"onnxruntime not measured: {exc}")
        return []
    runners = []
    calibration = calibration_frames()
    for quantization in ("fp32", "int8"):
        try:
            path = export_model(model, tmp / f"{name}{SUFFIXES[quantization]}", quantization, calibration)
            eng = OnnxStyleEngine({name: path}, device="cpu", size=None, threads=torch.get_num_threads())
        except Exception as exc:  # an exporter or quantiser failure: record, carry on with the rest
            out["errors"].append(f"onnxruntime {quantization}: {type(exc).__name__}: {exc}")
            continue
        runners.append(Runner("onnxruntime", quantization, eng.stylize, torch.device("cpu"), engine=eng))
    return runners


def bench_device(device: torch.device, args: argparse.Namespace, sizes: list[tuple[int, int]],
                 tmp: Path, out: dict[str, Any]) -> None:
    name, model, desc = choose_model(args, device.type)
    models = {name: model}
    precisions = precisions_for(device, args)
    frames_n = args.frames or (100 if device.type == "cuda" else 20)
    warm_n = args.warmup if args.warmup is not None else (20 if device.type == "cuda" else 3)
    repeats = args.repeats
    out["models"][device.type] = {"style": name, **desc}
    log.warning("%s: %s (%s), precisions %s, sizes %s", device, name, desc["arch"], ", ".join(precisions),
                ", ".join(size_label(s) for s in sizes))

    runners: list[Runner] = []
    for prec in precisions:
        try:
            eng = make_engine(models, device, prec, args.compile)
        except Exception as exc:  # e.g. compilation unavailable: record, carry on
            out["errors"].append(f"{device} {prec}: {type(exc).__name__}: {exc}")
            continue
        runners.append(Runner("engine", prec, eng.stylize, device, engine=eng))
    if device.type == "cpu":
        runners += onnx_runners(model, name, tmp, out)
    naive = NaiveStylizer(model, device)
    naive_flags = functools.partial(cuda_flags, device, benchmark=False)
    runners.append(Runner("naive", "fp32", naive, device, flags=naive_flags))

    for size in sizes:
        w, h = size
        frames = make_frames(w, h)
        active = []
        for r in runners:
            r.reset()
            try:
                r.warm(frames, warm_n)
                _check_engine(r, device)
                active.append(r)
            except Exception as exc:
                out["errors"].append(f"{device} {r.label} {size_label(size)}: {type(exc).__name__}: {exc}")
                log.warning("%s %s at %s failed: %s", device, r.label, size_label(size), exc)
        for _ in range(repeats):  # interleaved: a load spike hits every variant alike
            for r in active:
                r.run(frames, frames_n)
        for r in list(active):
            try:
                _check_engine(r, device)
            except RuntimeError as exc:
                out["errors"].append(f"{device} {r.label} {size_label(size)}: {exc}")
                active.remove(r)
        naive_s = runners[-1].summary() if runners[-1] in active else None
        fp_base = None
        for r in active:
            if r.engine is None:
                continue
            s = r.summary()
            if r.name == "engine" and r.precision == precisions[0]:
                fp_base = s["fps"]  # every row, ORT's too, against torch's first precision
            row = {
                "device": device.type,
                "precision": r.precision,
                "size": size_label(size),
                "width": w,
                "height": h,
                "arch": desc["arch"],
                "backend": "onnxruntime" if r.name == "onnxruntime" else "torch",
                "channels_last": getattr(r.engine, "channels_last", None),
                "engine_fps": s["fps"],
                "engine_p50_ms": s["p50_ms"],
                "engine_p95_ms": s["p95_ms"],
                "engine_runs_fps": s["runs_fps"],
                "naive_fps": naive_s["fps"] if naive_s else None,
                "naive_p50_ms": naive_s["p50_ms"] if naive_s else None,
                "naive_p95_ms": naive_s["p95_ms"] if naive_s else None,
                "naive_runs_fps": naive_s["runs_fps"] if naive_s else None,
                "speedup_vs_naive": s["fps"] / naive_s["fps"] if naive_s and naive_s["fps"] else None,
                "p50_latency_ratio_vs_naive": (naive_s["p50_ms"] / s["p50_ms"]) if naive_s and s["p50_ms"] else None,
                "vs_first_precision": (s["fps"] / fp_base) if fp_base else None,
                "frames": frames_n,
                "repeats": repeats,
            }
            if device.type == "cpu" and size in CPU_TARGETS:
                row["cpu_target_fps"] = CPU_TARGETS[size]
                row["meets_cpu_target"] = s["fps"] >= CPU_TARGETS[size]
            out["engine"].append(row)

        # Parity: every variant against strict fp32 eager, on the same frames.
        if args.parity_frames > 0:
            pframes = frames[: args.parity_frames]
            ref = reference_outputs(model, pframes, device)
            for r in active:
                with r.flags():
                    outs = [r.fn(f) for f in pframes]
                scores = [psnr(a, b) for a, b in zip(outs, ref)]
                out["parity"].append({
                    "device": device.type,
                    "size": size_label(size),
                    "variant": r.label,
                    "reference": "fp32 eager (TF32 off)" if device.type == "cuda" else "fp32 eager",
                    "psnr_db": min(scores),
                    "psnr_mean_db": statistics.fmean(scores),
                    "max_abs_diff": int(max(np.abs(a.astype(int) - b.astype(int)).max() for a, b in zip(outs, ref))),
                    "meets_40db": min(scores) >= 40.0,
                    "frames": len(pframes),
                })

        # Pipeline with the app's own precision.
        if args.pipeline_seconds > 0:
            app_precision = default_precision(device)
            primary = next((r for r in active if r.name == "engine" and r.precision == app_precision), None)
            if primary is not None:
                engine_fps = primary.summary()["fps"]
                try:
                    thread_fps = engine_fps_in_thread(primary.engine, frames, frames_n, warm_n)
                    row = run_pipeline(primary.engine, size, engine_fps, args, tmp, thread_fps)
                    out["pipeline"].append({"device": device.type, "precision": primary.precision,
                                            "size": size_label(size), **row})
                except Exception as exc:
                    out["errors"].append(f"{device} pipeline {size_label(size)}: {type(exc).__name__}: {exc}")
                    log.exception("pipeline at %s failed", size_label(size))
        log.warning("%s %s done", device, size_label(size))


def compare_archs(args: argparse.Namespace, sizes: list[tuple[int, int]], out: dict[str, Any]) -> None:
    """CPU ms/frame of candidate light configurations, through the engine, at full frame size."""
    device = torch.device("cpu")
    configs = list(args.arch) if args.arch else list(ARCH_CANDIDATES)
    precisions = cpu_precisions(args)
    frames_n = args.frames or 10
    warm_n = args.warmup if args.warmup is not None else 2
    runners: list[tuple[TransformerConfig, StyleModel, Runner]] = []
    for cfg in configs:
        model = random_style_model(cfg, args.seed)
        for prec in precisions:
            eng = make_engine({model.name: model}, device, prec, "off")
            runners.append((cfg, model, Runner("engine", prec, eng.stylize, device, engine=eng)))
    for size in sizes:
        w, h = size
        frames = make_frames(w, h)
        for _, _, r in runners:
            r.reset()
            r.warm(frames, warm_n)
        for _ in range(args.repeats):
            for _, _, r in runners:
                r.run(frames, frames_n)
        for cfg, model, r in runners:
            s = r.summary()
            target = CPU_TARGETS.get(size)
            out["compare_archs"].append({
                "arch": arch_label(cfg),
                **cfg.to_dict(),
                "precision": r.precision,
                "size": size_label(size),
                "ms_per_frame": 1e3 / s["fps"] if s["fps"] else None,
                "fps": s["fps"],
                "p50_ms": s["p50_ms"],
                "p95_ms": s["p95_ms"],
                "gmacs": count_macs(cfg, w, h) / 1e9,
                "params": sum(v.numel() for v in model.state_dict.values()),
                "backend": "onnxruntime" if r.name == "onnxruntime" else "torch",
                "channels_last": getattr(r.engine, "channels_last", None),
                "target_fps": target,
                "meets_target": (s["fps"] >= target) if target else None,
            })
        log.warning("compare-archs %s done", size_label(size))


# ----------------------------------------------------------------------------------- output


def print_report(out: dict[str, Any]) -> None:
    meta = out["meta"]
    print(f"nstcam.measure.bench  torch {meta['torch']}  threads {meta['torch_threads']}  cpu {meta['cpu']}  "
          f"load {meta['loadavg_start']} -> {meta['loadavg_end']}{'  mallopt' if meta['malloc_tuned'] else ''}")
    for dev, m in out["models"].items():
        print(f"model on {dev}: {m['style']} ({m['arch']}; {m['source']})")
    if out["engine"]:
        print("\nEngine (BGR host -> RGB host, full frame size) vs naive example loop")
        print(table(out["engine"], [
            ("device", "device", ""), ("backend", "backend", ""), ("prec", "precision", ""), ("size", "size", ""),
            ("ch_last", "channels_last", ""),
            ("fps", "engine_fps", ".1f"), ("p50 ms", "engine_p50_ms", ".1f"), ("p95 ms", "engine_p95_ms", ".1f"),
            ("naive fps", "naive_fps", ".1f"), ("naive p50", "naive_p50_ms", ".1f"), ("naive p95", "naive_p95_ms", ".1f"),
            ("x naive", "speedup_vs_naive", ".2f"), ("vs 1st prec", "vs_first_precision", ".2f"),
            ("target", "cpu_target_fps", ".0f"), ("meets", "meets_cpu_target", ""),
        ]))
    if out["pipeline"]:
        print("\nPipeline (the live session: capture -> stylize thread -> sink), frames arriving faster than stylized")
        print(table(out["pipeline"], [
            ("device", "device", ""), ("prec", "precision", ""), ("size", "size", ""),
            ("capture fps", "capture_fps", ".1f"), ("pipe fps", "pipeline_fps", ".1f"), ("engine fps", "engine_fps", ".1f"),
            ("pipe/eng", "pipeline_vs_engine", ".2f"), ("eng fps thread", "engine_thread_fps", ".1f"),
            ("pipe/eng thread", "pipeline_vs_engine_thread", ".2f"), ("lat p50", "latency_p50_ms", ".1f"),
            ("lat p95", "latency_p95_ms", ".1f"), ("p95 1st half", "first_half_p95_ms", ".1f"),
            ("p95 2nd half", "second_half_p95_ms", ".1f"), ("captured", "captured", ""), ("dropped", "dropped", ""),
            ("bounded", "latency_bounded", ""),
        ]))
    if out["parity"]:
        print("\nParity vs strict fp32 eager (PSNR over the same frames)")
        print(table(out["parity"], [
            ("device", "device", ""), ("size", "size", ""), ("variant", "variant", ""),
            ("PSNR min dB", "psnr_db", ".1f"), ("PSNR mean dB", "psnr_mean_db", ".1f"),
            ("max |diff|", "max_abs_diff", ""), (">= 40 dB", "meets_40db", ""),
        ]))
    if out["compare_archs"]:
        print("\nCPU architecture comparison (engine, full frame size)")
        print(table(out["compare_archs"], [
            ("arch", "arch", ""), ("prec", "precision", ""), ("size", "size", ""), ("GMAC", "gmacs", ".2f"),
            ("params", "params", ""), ("ms/frame", "ms_per_frame", ".1f"), ("fps", "fps", ".1f"),
            ("p95 ms", "p95_ms", ".1f"), ("target", "target_fps", ".0f"), ("meets", "meets_target", ""),
        ]))
    for err in out["errors"]:
        print(f"error: {err}")


# ----------------------------------------------------------------------------------- main


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m nstcam.measure.bench",
        description="Benchmark the style engine and the live pipeline against a naive per-frame loop.",
    )
    p.add_argument("--device", choices=("all", "cpu", "cuda"), default="all",
                   help="devices to measure (all: cpu, and cuda when available; default: all)")
    p.add_argument("--sizes", type=parse_sizes, metavar="WxH[,WxH...]",
                   help="frame sizes (default: 320x240,640x480,1280x720,1920x1080; on CPU only the first "
                        "two unless --all-sizes)")
    p.add_argument("--all-sizes", action="store_true", help="all four default sizes on CPU too")
    p.add_argument("--frames", type=positive_int, metavar="N", help="timed frames per run (default: cuda 100, cpu 20)")
    p.add_argument("--repeats", type=positive_int, default=3, metavar="N", help="runs per variant; the median is reported (default: 3)")
    p.add_argument("--warmup", type=int, metavar="N", help="untimed frames per variant and size (default: cuda 20, cpu 3)")
    model = p.add_mutually_exclusive_group()
    model.add_argument("--style", metavar="NAME", help="bundled style to time (default: the first)")
    model.add_argument("--arch", type=parse_arch, action="append", metavar="SPEC",
                       help="random-init network, e.g. width=16,res_blocks=5,outer_kernel=9,separable=0 "
                            "(repeatable with --compare-archs)")
    p.add_argument("--styles-dir", metavar="DIR", help="style folder (default: the bundled styles)")
    p.add_argument("--threads", type=positive_int, metavar="N", help="torch CPU threads (default: torch's choice)")
    p.add_argument("--cpu-bf16", choices=("auto", "on", "off"), default="auto",
                   help="also time CPU bf16 (auto: if the CPU has native bf16)")
    p.add_argument("--compile", choices=COMPILE_MODES, default="off",
                   help="also time torch.compile'd nets (reduce-overhead: CUDA graphs); experimental")
    p.add_argument("--pipeline-seconds", type=float, metavar="S",
                   help="measured pipeline window per size; 0 skips the pipeline (default: cuda 5, cpu 8)")
    p.add_argument("--pipeline-warmup", type=float, default=1.0, metavar="S",
                   help="pipeline run-in before measuring (default: 1)")
    p.add_argument("--capture-fps", type=float, metavar="FPS",
                   help="pace of the generated video (default: 2x the engine fps, 30..1000)")
    p.add_argument("--parity-frames", type=int, default=3, metavar="N", help="frames compared for PSNR (0: skip)")
    p.add_argument("--stability", action="store_true",
                   help="instead, the temporal stability report; must come first, and the flags after it "
                   "are nstcam.measure.stability's (see python -m nstcam.measure.stability --help)")
    p.add_argument("--compare-archs", action="store_true",
                   help="only compare candidate light architectures on the CPU (320x240, 640x480)")
    p.add_argument("--mallopt", action=argparse.BooleanOptionalAction, default=True,
                   help="Linux/glibc: keep freed memory in the process (fewer page faults per frame), "
                        "as the app does at start-up; --no-mallopt measures without it (default: on)")
    p.add_argument("--seed", type=int, default=0, help="seed of random-init networks")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="log the engine's decisions")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--stability"]:  # the temporal stability report (nstcam.measure.stability) has its own flags
        from nstcam.measure.stability import main as stability_main

        return stability_main(argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    malloc_tuned = keep_freed_memory() if args.mallopt else False
    out: dict[str, Any] = {
        "meta": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "cpu": cpu_name(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "cpu_bf16_native": cpu_bf16_supported(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "cudnn_tf32": torch.backends.cudnn.allow_tf32,
            "malloc_tuned": malloc_tuned,
            "loadavg_start": [round(v, 2) for v in os.getloadavg()],
            "argv": list(argv) if argv is not None else sys.argv[1:],
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
        "models": {}, "engine": [], "pipeline": [], "parity": [], "compare_archs": [], "errors": [],
    }
    if args.pipeline_seconds is None:
        args.pipeline_seconds = 5.0 if torch.cuda.is_available() and args.device != "cpu" else 8.0
    if args.compare_archs:
        compare_archs(args, args.sizes or list(CPU_DEFAULT_SIZES), out)
    else:
        devices = []
        if args.device in ("all", "cpu"):
            devices.append(torch.device("cpu"))
        if args.device in ("all", "cuda"):
            if torch.cuda.is_available():
                devices.append(torch.device("cuda", torch.cuda.current_device()))
            elif args.device == "cuda":
                print("nstcam.measure.bench: error: --device cuda: no CUDA device here", file=sys.stderr)
                return 2
        with tempfile.TemporaryDirectory(prefix="nstcam-bench-") as tmp:
            for device in devices:
                if args.sizes:
                    sizes = args.sizes
                elif device.type == "cpu" and not args.all_sizes:
                    sizes = list(CPU_DEFAULT_SIZES)
                else:
                    sizes = list(ALL_SIZES)
                bench_device(device, args, sizes, Path(tmp), out)
    out["meta"]["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    out["meta"]["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    print_report(out)
    if args.json:
        write_json(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
