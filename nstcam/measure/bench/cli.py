"""`python -m nstcam.measure.bench`: its parser and main."""
from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from nstcam.host.malloc import keep_freed_memory
from nstcam.measure.bench.report import print_report
from nstcam.measure.bench.runners import ALL_SIZES, COMPILE_MODES, CPU_DEFAULT_SIZES, ISA_ENV, parse_sizes
from nstcam.measure.bench.suites import bench_device, compare_archs
from trainer.benchkit import parse_arch, write_json
from trainer.devices import cpu_bf16_supported, cpu_name


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
                   help="only compare candidate light architectures on the CPU (320x240, 640x480), in "
                        "interleaved rounds, each with its cost per frame relative to the first "
                        "(--arch's first, else the bundled light network) in the same round")
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
            "isa_env": {k: os.environ[k] for k in ISA_ENV if k in os.environ},  # e.g. an emulated AVX2 CPU
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
