"""Benchmark of the trainer's two algorithms against the PyTorch fast_neural_style example: `python -m trainer.bench`.

Gatys (steps/s; one step = one forward+backward pass of the loss net on one image, at
`--size` x `--size`) and fast-style training (images/s and steps/s; one step = one batch of
`--batch-size` crops through the TransformerNet, the loss net and Adam), for each loss net:

* project: the trainer's own code paths: `trainer.gatys.refine` (L-BFGS, one evaluation per
  step) with a `PerceptualLoss`, and the body of `trainer.fast`'s training loop (uint8 batch
  -> device, autocast, `PerceptualLoss`, GradScaler, Adam) with the same settings trainer.fast
  would use on that device: on CUDA channels_last, cuDNN autotuning and TF32, plus the AMP
  variant (bf16 where supported, else fp16); on CPU fp32, plus bf16 autocast (`--amp` there)
  when the CPU has native bf16. EfficientNet-Lite0 runs with its real weights; VGG19 with
  random weights unless they are on disk or given (`--vgg-weights`): the timing is the same.
* baseline: the example's way: VGG16 (torchvision `vgg16().features`, random weights) tapped at
  relu1_2/relu2_2/relu3_3/relu4_3, fp32, no AMP, images 0-255 normalised per call, a Gram per
  layer, content MSE at relu2_2, the example's TransformerNet (width 32, which is nstcam's
  default TransformerNet), Adam, `.item()` of the losses every step; for Gatys the same VGG16
  taps with L-BFGS (torch defaults, one step = one closure evaluation) on the image.

Data loading is not timed (fixed synthetic batches already in host memory) for either side. The
runs of all variants are interleaved, so load that comes and goes hits them alike; every figure
is the median of `--repeats` runs, and each project figure has its ratio to the baseline.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import platform
import statistics
import sys
import time
from collections import namedtuple
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainer.benchkit import arch_label, cuda_flags, parse_arch, sync, table, write_json
from trainer.cliargs import int_at_least, number
from trainer.devices import cpu_bf16_supported, cpu_name, resolve_device
from trainer.lossnets import DEFAULT_WEIGHTS, LOSS_NETS, build_loss_net
from trainer.lossnets.vgg import VGG19LossNet, vgg19_weights_on_disk
from trainer.perceptual import PerceptualLoss
from trainer.transformer import TransformerConfig, TransformerNet

log = logging.getLogger("trainer.bench")

# The example's loss weights (fast_neural_style defaults).
EXAMPLE_CONTENT_WEIGHT = 1e5
EXAMPLE_STYLE_WEIGHT = 1e10
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ----------------------------------------------------------------------------------- helpers


def steps_per_second(step: Callable[[], None], device: torch.device) -> Callable[[int], float]:
    """A timer for `Variant.run`: n calls of `step`, synchronised with the device at both ends."""

    def run(n: int) -> float:
        sync(device)
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        sync(device)
        return n / (time.perf_counter() - t0)

    return run


def synthetic_images(n: int, size: int, seed: int) -> torch.Tensor:
    """(n, 3, size, size) uint8 photo-like images: smooth colour fields, edges and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(1, size - 1)
    out = np.empty((n, 3, size, size), np.uint8)
    for i in range(n):
        a = rng.uniform(0, 2 * np.pi, 3)
        f = rng.uniform(1, 6, 3)
        base = np.stack([127 + 100 * np.sin(f[c] * (xx * np.cos(a[c]) + yy * np.sin(a[c])) * np.pi) for c in range(3)])
        cx, cy, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.1, 0.3)
        base[:, (xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.uniform(0, 255, (3, 1))
        base += rng.normal(0, 12, base.shape)
        out[i] = np.clip(base, 0, 255).astype(np.uint8)
    return torch.from_numpy(out)


# ----------------------------------------------------------------------------------- the example's code


def vgg16_features() -> nn.Sequential:
    """torchvision's vgg16().features (random weights), without building the 100M-parameter classifier."""
    try:
        from torchvision.models.vgg import cfgs, make_layers

        return make_layers(cfgs["D"], batch_norm=False)
    except (ImportError, KeyError):  # a torchvision without these helpers
        from torchvision.models import vgg16

        return vgg16(weights=None).features


class ExampleVgg16(nn.Module):
    """fast_neural_style's Vgg16: relu1_2, relu2_2, relu3_3, relu4_3."""

    Outputs = namedtuple("VggOutputs", ["relu1_2", "relu2_2", "relu3_3", "relu4_3"])

    def __init__(self) -> None:
        super().__init__()
        features = vgg16_features()
        self.slice1 = nn.Sequential(*[features[i] for i in range(4)])
        self.slice2 = nn.Sequential(*[features[i] for i in range(4, 9)])
        self.slice3 = nn.Sequential(*[features[i] for i in range(9, 16)])
        self.slice4 = nn.Sequential(*[features[i] for i in range(16, 23)])
        for p in self.parameters():
            p.requires_grad = False

    def forward(self, x: torch.Tensor):  # noqa: ANN201
        h = self.slice1(x)
        h_relu1_2 = h
        h = self.slice2(h)
        h_relu2_2 = h
        h = self.slice3(h)
        h_relu3_3 = h
        h = self.slice4(h)
        h_relu4_3 = h
        return self.Outputs(h_relu1_2, h_relu2_2, h_relu3_3, h_relu4_3)


def example_gram_matrix(y: torch.Tensor) -> torch.Tensor:
    (b, ch, h, w) = y.size()
    features = y.view(b, ch, w * h)
    features_t = features.transpose(1, 2)
    return features.bmm(features_t) / (ch * h * w)


def example_normalize_batch(batch: torch.Tensor) -> torch.Tensor:
    # The example divides in place; out of place here so it also works on a leaf (Gatys). Same cost.
    mean = batch.new_tensor(IMAGENET_MEAN).view(-1, 1, 1)
    std = batch.new_tensor(IMAGENET_STD).view(-1, 1, 1)
    batch = batch / 255.0
    return (batch - mean) / std


# ----------------------------------------------------------------------------------- variants


@dataclass
class Variant:
    kind: str  # "gatys" | "train"
    name: str
    loss_net: str
    precision: str
    baseline: bool
    run: Callable[[int], float]  # timed steps -> steps/s
    device: torch.device
    benchmark: bool | None = None
    tf32: bool | None = None
    channels_last: bool = False
    weights: str = ""
    batch: int = 1
    rates: list[float] = field(default_factory=list)

    def flags(self) -> contextlib.AbstractContextManager:
        return cuda_flags(self.device, self.benchmark, self.tf32)

    def measure(self, steps: int) -> None:
        with self.flags():
            self.rates.append(self.run(steps))

    def warm(self, steps: int) -> None:
        if steps > 0:
            with self.flags():
                self.run(steps)


def _loss_net(name: str, vgg_weights: Path | None) -> tuple[Any, str]:
    """(loss net, what weights it has): real weights where available, else random (VGG19)."""
    if name == "vgg19" and vgg_weights is None and vgg19_weights_on_disk() is None:
        return VGG19LossNet(), "random"
    return build_loss_net(name, vgg_weights=vgg_weights), "imagenet"


def _perceptual(name: str, vgg_weights: Path | None, device: torch.device) -> tuple[PerceptualLoss, str]:
    net, weights = _loss_net(name, vgg_weights)
    d = DEFAULT_WEIGHTS[net.name]
    return PerceptualLoss(net, d.content, d.style, d.tv).to(device), weights


def project_gatys(name: str, args: argparse.Namespace, device: torch.device, content: torch.Tensor,
                  style: torch.Tensor) -> Variant:
    from trainer.gatys import refine

    loss, weights = _perceptual(name, args.vgg_weights, device)
    loss.set_style_image(style.to(device))

    def run(n: int) -> float:
        stamps: list[float] = []

        def progress(done: int, total: int, terms: dict[str, float]) -> None:
            sync(device)
            stamps.append(time.perf_counter())

        refine(content, loss=loss, steps=n + 1, optimizer="lbfgs", progress=progress)
        return n / (stamps[n] - stamps[0])

    return Variant("gatys", f"project {name}", name, "fp32", False, run, device, benchmark=True, weights=weights)


def baseline_gatys(device: torch.device, content: torch.Tensor, style: torch.Tensor) -> Variant:
    vgg = ExampleVgg16().to(device)
    content255 = content.to(device) * 255.0
    with torch.no_grad():
        content_target = vgg(example_normalize_batch(content255)).relu2_2
        style_grams = [example_gram_matrix(y) for y in vgg(example_normalize_batch(style.to(device) * 255.0))]

    def run(n: int) -> float:
        img = content255.clone().requires_grad_(True)
        optimizer = torch.optim.LBFGS([img], max_iter=n + 1)
        stamps: list[float] = []

        def closure() -> torch.Tensor:
            with torch.no_grad():
                img.clamp_(0, 255)
            sync(device)
            stamps.append(time.perf_counter())
            optimizer.zero_grad()
            features = vgg(example_normalize_batch(img))
            content_loss = EXAMPLE_CONTENT_WEIGHT * F.mse_loss(features.relu2_2, content_target)
            style_loss = 0.0
            for ft, gm in zip(features, style_grams):
                style_loss = style_loss + F.mse_loss(example_gram_matrix(ft), gm)
            loss = content_loss + EXAMPLE_STYLE_WEIGHT * style_loss
            loss.backward()
            return loss

        while len(stamps) < n + 1:
            optimizer.step(closure)
        return n / (stamps[n] - stamps[0])

    return Variant("gatys", "baseline vgg16 (example)", "vgg16", "fp32", True, run, device, benchmark=False,
                   weights="random")


def project_train(name: str, args: argparse.Namespace, device: torch.device, amp: torch.dtype | None,
                  batch_u8: torch.Tensor, style: torch.Tensor) -> Variant:
    from trainer.training.step import Stability, train_step

    channels_last = device.type == "cuda"  # as trainer.fast
    perceptual, weights = _perceptual(name, args.vgg_weights, device)
    if channels_last:
        perceptual.net.to(memory_format=torch.channels_last)
    perceptual.set_style_image(style.to(device))  # fp32, once
    torch.manual_seed(0)
    model = TransformerNet(args.arch).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(device.type, enabled=amp is torch.float16)
    batch = batch_u8.pin_memory() if device.type == "cuda" else batch_u8
    stability = Stability(args.stability_weight) if args.stability_weight > 0 else None
    sums = torch.zeros(3 if stability is None else 4, device=device)

    def step() -> None:
        sums.add_(train_step(batch, model, perceptual, optimizer, scaler, device, amp, channels_last, stability))

    prec = "fp32" if amp is None else str(amp).removeprefix("torch.")
    label = (f"project {name} {prec}" + ("+channels_last" if channels_last else "")
             + ("+stability" if stability is not None else ""))
    return Variant("train", label, name, prec, False, steps_per_second(step, device), device, benchmark=True,
                   tf32=True if device.type == "cuda" else None, channels_last=channels_last, weights=weights,
                   batch=len(batch_u8))


def baseline_train(device: torch.device, batch_u8: torch.Tensor, style: torch.Tensor) -> Variant:
    torch.manual_seed(0)
    transformer = TransformerNet(TransformerConfig()).to(device)  # the example's net: width 32, 5 blocks, 9x9
    optimizer = torch.optim.Adam(transformer.parameters(), 1e-3)
    vgg = ExampleVgg16().to(device)
    x_host = batch_u8.float()  # the example's DataLoader yields float 0-255 (ToTensor + mul(255))
    n_batch = len(x_host)
    style255 = (style * 255.0).repeat(n_batch, 1, 1, 1).to(device)
    features_style = vgg(example_normalize_batch(style255))
    gram_style = [example_gram_matrix(y) for y in features_style]
    agg = [0.0, 0.0]

    def step() -> None:
        optimizer.zero_grad()
        x = x_host.to(device)
        y = transformer(x)
        y = example_normalize_batch(y)
        x = example_normalize_batch(x)
        features_y = vgg(y)
        features_x = vgg(x)
        content_loss = EXAMPLE_CONTENT_WEIGHT * F.mse_loss(features_y.relu2_2, features_x.relu2_2)
        style_loss = 0.0
        for ft_y, gm_s in zip(features_y, gram_style):
            gm_y = example_gram_matrix(ft_y)
            style_loss = style_loss + F.mse_loss(gm_y, gm_s[:n_batch, :, :])
        style_loss = style_loss * EXAMPLE_STYLE_WEIGHT
        total_loss = content_loss + style_loss
        total_loss.backward()
        optimizer.step()
        agg[0] += content_loss.item()
        agg[1] += style_loss.item()

    return Variant("train", "baseline vgg16 (example)", "vgg16", "fp32", True, steps_per_second(step, device),
                   device, benchmark=False, weights="random", batch=n_batch)


# ----------------------------------------------------------------------------------- running


def amp_dtypes(device: torch.device, args: argparse.Namespace) -> list[torch.dtype | None]:
    """Precisions of the project's training variants: fp32, and the AMP trainer.fast would use."""
    if args.amp == "off":
        return [None]
    if device.type == "cuda":
        return [None, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16]
    if args.amp == "on" or cpu_bf16_supported():
        return [None, torch.bfloat16]
    return [None]


def measure(variants: list[Variant], steps: int, warmup: int, repeats: int) -> None:
    for v in variants:
        v.warm(warmup)
    for _ in range(repeats):  # interleaved
        for v in variants:
            v.measure(steps)


def rows_for(variants: list[Variant], args: argparse.Namespace) -> list[dict[str, Any]]:
    base = next((v for v in variants if v.baseline), None)
    base_rate = statistics.median(base.rates) if base and base.rates else None
    rows = []
    for v in variants:
        rate = statistics.median(v.rates)
        row: dict[str, Any] = {
            "kind": v.kind,
            "variant": v.name,
            "baseline": v.baseline,
            "loss_net": v.loss_net,
            "weights": v.weights,
            "precision": v.precision,
            "channels_last": v.channels_last,
            "device": v.device.type,
            "size": args.size,
            "steps_per_s": rate,
            "ms_per_step": 1e3 / rate if rate else None,
            "runs_steps_per_s": [round(r, 4) for r in v.rates],
            "ratio_vs_baseline": rate / base_rate if base_rate else None,
        }
        if v.device.type == "cuda":
            row["cudnn_benchmark"] = bool(v.benchmark)
            row["tf32"] = "default (conv on, matmul off)" if v.tf32 is None else v.tf32
        if v.kind == "train":
            row["batch_size"] = v.batch
            row["images_per_s"] = rate * v.batch
            row["arch"] = "w32/r5/k9" if v.baseline else arch_label(args.arch)
        rows.append(row)
    return rows


def build_parser() -> argparse.ArgumentParser:
    from trainer.training.recipe import STABILITY_WEIGHT

    p = argparse.ArgumentParser(
        prog="python -m trainer.bench",
        description="Gatys steps/s and fast-style training images/s of the trainer vs the PyTorch "
                    "fast_neural_style example (VGG16, fp32).",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    p.add_argument("--size", type=int_at_least(1), default=256, metavar="PX", help="image side in pixels (default: 256)")
    p.add_argument("--batch-size", type=int_at_least(1), default=4, metavar="N", help="training batch (default: 4)")
    p.add_argument("--steps", type=int_at_least(1), default=3, metavar="N", help="timed training steps per run (default: 3)")
    p.add_argument("--gatys-steps", type=int_at_least(1), metavar="N", help="timed Gatys steps per run (default: 2 x --steps)")
    p.add_argument("--repeats", type=int_at_least(1), default=3, metavar="N", help="runs per variant; medians are reported (default: 3)")
    p.add_argument("--warmup", type=int, default=1, metavar="N", help="untimed steps per variant (default: 1)")
    p.add_argument("--loss-nets", default=",".join(LOSS_NETS), metavar="A,B",
                   help=f"project loss nets to time (default: {','.join(LOSS_NETS)})")
    p.add_argument("--vgg-weights", type=Path, metavar="PATH", help="VGG19 state dict (default: random weights)")
    p.add_argument("--arch", type=parse_arch, default=TransformerConfig(), metavar="SPEC",
                   help="project TransformerNet for training (default: width=32,res_blocks=5,outer_kernel=9)")
    p.add_argument("--amp", choices=("auto", "on", "off"), default="auto",
                   help="also time the AMP training variant (auto: on CUDA, and on CPUs with native bf16)")
    p.add_argument("--stability-weight", type=number(positive=False), metavar="W",
                   default=STABILITY_WEIGHT,
                   help="weight of the training step's stability loss, as in trainer.fast (default: "
                        "trainer.fast's, %(default)s; 0 times the step without it)")
    p.add_argument("--only", choices=("gatys", "train"), help="time only one of the two")
    p.add_argument("--threads", type=int_at_least(1), metavar="N", help="torch CPU threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        print(f"trainer.bench: error: {exc}", file=sys.stderr)
        return 2
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    names = [n.strip() for n in args.loss_nets.split(",") if n.strip()]
    unknown = set(names) - set(LOSS_NETS)
    if unknown:
        print(f"trainer.bench: error: unknown loss net(s) {sorted(unknown)}; choose from {LOSS_NETS}", file=sys.stderr)
        return 2
    out: dict[str, Any] = {
        "meta": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "device": device.type,
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "cpu_bf16_native": cpu_bf16_supported(),
            "size": args.size,
            "batch_size": args.batch_size,
            "steps": args.steps,
            "gatys_steps": args.gatys_steps or 2 * args.steps,
            "repeats": args.repeats,
            "loadavg_start": [round(v, 2) for v in os.getloadavg()],
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
        "gatys": [],
        "train": [],
    }
    content = synthetic_images(1, args.size, args.seed).float().div(255.0)
    style = synthetic_images(1, args.size, args.seed + 1000).float().div(255.0)
    if args.only in (None, "gatys"):
        gv = [baseline_gatys(device, content, style)] + [project_gatys(n, args, device, content, style) for n in names]
        measure(gv, args.gatys_steps or 2 * args.steps, args.warmup, args.repeats)
        out["gatys"] = rows_for(gv, args)
        del gv
    if args.only in (None, "train"):
        batch = synthetic_images(args.batch_size, args.size, args.seed + 1)
        tv = [baseline_train(device, batch, style)]
        for n in names:
            for amp in amp_dtypes(device, args):
                tv.append(project_train(n, args, device, amp, batch, style))
        measure(tv, args.steps, args.warmup, args.repeats)
        out["train"] = rows_for(tv, args)
    out["meta"]["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    out["meta"]["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")

    m = out["meta"]
    print(f"trainer.bench  torch {m['torch']}  {device} ({m['device_name']})  threads {m['torch_threads']}  "
          f"{args.size}px  load {m['loadavg_start']} -> {m['loadavg_end']}")
    if out["gatys"]:
        print(f"\nGatys (1 image {args.size}x{args.size}, L-BFGS; one step = one forward+backward)")
        print(table(out["gatys"], [("variant", "variant", ""), ("weights", "weights", ""), ("prec", "precision", ""),
                                   ("steps/s", "steps_per_s", ".2f"), ("ms/step", "ms_per_step", ".0f"),
                                   ("x baseline", "ratio_vs_baseline", ".2f")]))
    if out["train"]:
        print(f"\nFast-style training (batch {args.batch_size} of {args.size}x{args.size}, Adam)")
        print(table(out["train"], [("variant", "variant", ""), ("arch", "arch", ""), ("weights", "weights", ""),
                                   ("images/s", "images_per_s", ".2f"), ("steps/s", "steps_per_s", ".3f"),
                                   ("ms/step", "ms_per_step", ".0f"), ("x baseline", "ratio_vs_baseline", ".2f")]))
    if args.json:
        write_json(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
