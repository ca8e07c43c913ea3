"""One device's engines, precisions and sizes against the naive loop; the light architectures' CPU cost."""
from __future__ import annotations

import argparse
import functools
import logging
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nstcam.engines.torch_engine import default_precision
from nstcam.live.demo import calibration_frames
from nstcam.measure.bench.pipeline import engine_fps_in_thread, run_pipeline
from nstcam.measure.bench.runners import (ARCH_CANDIDATES, CPU_TARGETS, NaiveStylizer, Runner, choose_model,
                                          count_macs, cpu_precisions, make_engine, make_frames, precisions_for,
                                          psnr, random_style_model, reference_outputs, size_label)
from trainer.benchkit import arch_label, cuda_flags
from trainer.stylefile import StyleModel
from trainer.transformer import TransformerConfig

log = logging.getLogger(__name__)


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
        reference = {r.precision: r for _, _, r in runners[:len(precisions)]}  # the first config's
        for cfg, model, r in runners:
            s = r.summary()
            target = CPU_TARGETS.get(size)
            ref = reference[r.precision]
            cost = [ref_fps / fps for ref_fps, fps in zip(ref.fps_runs, r.fps_runs)]  # ms / reference ms
            cpu_cost = [ms / ref_ms for ref_ms, ms in zip(ref.cpu_ms_runs, r.cpu_ms_runs)]
            out["compare_archs"].append({
                "arch": arch_label(cfg),
                **cfg.to_dict(),
                "precision": r.precision,
                "size": size_label(size),
                "ms_per_frame": 1e3 / s["fps"] if s["fps"] else None,
                "fps": s["fps"],
                "runs_fps": s["runs_fps"],
                "reference": arch_label(configs[0]),
                "cost_vs_reference": statistics.median(cost),
                "cost_vs_reference_min": min(cost),
                "cost_vs_reference_max": max(cost),
                "cpu_ms_per_frame": statistics.median(r.cpu_ms_runs),
                "cpu_cost_vs_reference": statistics.median(cpu_cost),
                "cpu_cost_vs_reference_min": min(cpu_cost),
                "cpu_cost_vs_reference_max": max(cpu_cost),
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


