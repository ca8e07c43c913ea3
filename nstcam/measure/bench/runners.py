"""The benchmark's pieces: random or bundled style models, frames, the engine and naive runners,
and the reference outputs they are checked against."""
from __future__ import annotations

import argparse
import contextlib
import logging
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from nstcam.engines.torch_engine import StyleEngine
from nstcam.live.demo import DemoSource
from trainer.benchkit import arch_label, cuda_flags, sync
from trainer.cliargs import frame_size
from trainer.devices import cpu_bf16_supported
from trainer.stylefile import StyleModel
from trainer.transformer import TransformerConfig, TransformerNet


log = logging.getLogger(__name__)

ALL_SIZES: tuple[tuple[int, int], ...] = ((320, 240), (640, 480), (1280, 720), (1920, 1080))
CPU_DEFAULT_SIZES: tuple[tuple[int, int], ...] = ((320, 240), (640, 480))
CPU_TARGETS: dict[tuple[int, int], float] = {(320, 240): 24.0, (640, 480): 8.0}
# The bundled styles' CPU ("light") variant and Johnson's network: used when no style is found.
LIGHT_CONFIG = TransformerConfig(width=16, res_blocks=5, outer_kernel=5, separable=False)
FULL_CONFIG = TransformerConfig()
ARCH_CANDIDATES: tuple[TransformerConfig, ...] = (  # the first is --compare-archs' reference
    LIGHT_CONFIG,
    TransformerConfig(16, 5, 9, False),
    TransformerConfig(16, 5, 5, True),
    TransformerConfig(16, 3, 5, False),
    TransformerConfig(12, 5, 5, False),
    TransformerConfig(24, 4, 5, True),
    TransformerConfig(32, 5, 9, False),
)
DISTINCT_FRAMES = 8  # frames cycle through this many different images
PSNR_CAP = 100.0  # reported for identical outputs (JSON has no infinity)
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")
# Settings that restrict the CPU's kernels or bf16 (README: emulating an AVX2-only CPU), kept in the JSON.
ISA_ENV = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "NSTCAM_NO_NATIVE_BF16")


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
    cpu_ms_runs: list[float] = field(default_factory=list)  # process CPU time per frame, per run
    latencies: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.name} {self.precision}"

    def reset(self) -> None:
        self.fps_runs, self.cpu_ms_runs, self.latencies = [], [], []

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
            start, cpu_start = time.perf_counter(), time.process_time()
            for i in range(n):
                t0 = time.perf_counter()
                self.fn(frames[i % len(frames)])  # returns host memory: already synchronised
                lat.append(time.perf_counter() - t0)
            total = time.perf_counter() - start
            cpu = time.process_time() - cpu_start
        self.fps_runs.append(n / total)
        self.cpu_ms_runs.append(cpu / n * 1e3)
        self.latencies.extend(lat)

    def summary(self) -> dict[str, float]:
        return {
            "fps": statistics.median(self.fps_runs) if self.fps_runs else 0.0,
            "p50_ms": percentile(self.latencies, 50) * 1e3,
            "p95_ms": percentile(self.latencies, 95) * 1e3,
            "runs_fps": [round(v, 3) for v in self.fps_runs],
        }


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


