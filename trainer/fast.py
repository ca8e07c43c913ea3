"""Fast neural style transfer training (Johnson et al., 2016): one TransformerNet per painting.

    python -m trainer.fast --dataset PHOTOS --style PAINTING.jpg [--steps N | --epochs N]
    torchrun --nproc_per_node 4 -m trainer.fast --dataset PHOTOS --style PAINTING.jpg ...

The network learns to stylize any photo in one forward pass by minimising the perceptual loss
(content, Gram style, total variation) measured through a frozen loss network against crops of
the photo folder. The result is a style file (`trainer.stylefile`) that the app loads.

Output: `--out` (default `runs/<name>/<name>.pt`); next to it `checkpoint.pt` (every
`--checkpoint-every` steps, at the end and on Ctrl-C/SIGTERM) and `samples/step_XXXXXX.png`.
`--resume` continues from a checkpoint and gives the same weights as an uninterrupted run (exactly
on CPU; on CUDA up to cuDNN's non-determinism): the data order is a pure function of the seed,
the epoch and the position in it (see `trainer.dataset`). Settings not given again on the
command line are taken from the checkpoint.

Mixed precision (`--amp`): on CUDA it is on by default, with bfloat16 where the GPU supports it,
else float16 with a GradScaler. On CPU it means bfloat16 autocast, on by default only where the
CPU has native bf16 (AVX512-BF16 / AMX), where it trains ~1.7x faster; elsewhere it would be slower.

Multi-GPU: under torchrun (RANK/WORLD_SIZE/LOCAL_RANK set, WORLD_SIZE > 1) every process trains
a DistributedDataParallel replica on its shard of each epoch. `--batch-size` is PER PROCESS: the
global batch is batch-size x world size, and `--steps` counts optimizer steps (so N processes see
N times the images per step). Rank 0 alone logs, shows progress, writes checkpoints, samples
and the style file.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import logging
import math
import os
import re
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from trainer import checkpoint as ckpt
from trainer.cliargs import int_at_least, number
from trainer.dataset import DatasetError, ImageFolderDataset, ResumableSampler, sample_seed, scan_images
from trainer.devices import cpu_bf16_supported, resolve_device
from trainer.fileio import check_writable
from trainer.images import ImageLoadError, load_image, pil_to_tensor, resize_short_side, save_image
from trainer.losses import apply_warp, random_warp, stability_loss
from trainer.lossnets import resolve_loss_net_name
from trainer.lossnets.errors import LossNetUnavailable
from trainer.perceptual import PerceptualLoss
from trainer.stylefile import save_style
from trainer.transformer import UPSAMPLE_MODES, TransformerConfig, TransformerNet

logger = logging.getLogger("trainer.fast")

LOSS_NET_CHOICES = ("auto", "vgg19", "efficientnet-lite0")
DEFAULT_STYLE_SIZE = 384  # the bundled pack's: strokes large enough to read at 192-320 px
SAMPLE_IMAGES = 4
INTERRUPTED_EXIT = 130
_PR_SET_PDEATHSIG = 1  # linux/prctl.h

# The default recipe, per device: what a plain `--dataset D --style S` trains. On CPU it is the
# bundled pack's light network (5x5 outer kernels, width 16) on 192 px crops, which trains in
# about 10 minutes on 2 cores; on CUDA Johnson's full network at the scale a GPU affords.
DEVICE_DEFAULTS = {
    "cpu": {"width": 16, "outer_kernel": 5, "image_size": 192, "batch_size": 4, "steps": 1200},
    "cuda": {"width": 32, "outer_kernel": 9, "image_size": 256, "batch_size": 8, "steps": 10000},
}
# Loss settings of fast training per loss net, where they differ from the net's Gatys defaults.
# EfficientNet-Lite0: content at stage2 (stride 4, like Johnson's relu2_2) pins local structure
# and stops the network painting saturated blobs into flat regions (seen with stage3 on every
# style); stage4 at half weight adds the larger strokes; no TV term (the 5x5 light network paints
# no pixel noise for it to remove, and TV 100 washes strokes out).
FAST_LOSS_DEFAULTS: dict[str, dict[str, Any]] = {
    "efficientnet-lite0": {
        "style_layers": {"stem": 1.0, "stage2": 1.0, "stage3": 1.0, "stage4": 0.5},
        "content_layer": "stage2",
        "tv_weight": 0.0,
    },
}
# Automatic style weight: the weight that makes the photos' own style loss (their Gram distance
# to the painting, before any training) equal to this budget. A flat painting (Udnie), whose
# Grams are close to a photo's, gets a high weight; a busy one (Woman with a Parasol) a low one.
STYLE_BUDGET = {"efficientnet-lite0": 150.0}
PROBE_IMAGES = 16
STABILITY_WEIGHT = 2000.0  # the default recipe's; trainer.bench times the step with it

# Settings a resumed run takes from the checkpoint unless they are given again.
_RESUMABLE = (
    "name", "title", "artist", "year", "image_size", "style_size", "batch_size", "epochs", "steps",
    "lr", "content_weight", "style_weight", "tv_weight", "loss_net", "vgg_weights", "width",
    "res_blocks", "outer_kernel", "separable", "variant", "amp", "seed", "checkpoint_every",
    "sample_every", "log_every", "blur_downsample", "upsample", "style_layers", "content_layer",
    "smoothing", "stability_weight", "stability_shift", "stability_rotate", "stability_noise", "style_auto",
)
_ARCHITECTURE = ("width", "res_blocks", "outer_kernel", "separable", "blur_downsample", "upsample")
# What checkpoints written before an architecture field existed were trained with.
_LEGACY_ARCHITECTURE = {"blur_downsample": False, "upsample": "nearest"}
# Settings whose change makes a resumed run differ from an uninterrupted one (warned about).
_TRAJECTORY = (
    "image_size", "style_size", "batch_size", "lr", "content_weight", "style_weight", "tv_weight",
    "loss_net", "seed", "amp", "smoothing", "stability_weight", "stability_shift", "stability_rotate",
    "stability_noise",
)


class UsageError(Exception):
    """Bad input from the user: reported as one `error: ...` line and exit status 2."""


class OutputError(Exception):
    """An output could not be written (full disk, read-only folder): one `error: ...` line, exit 1."""


@contextlib.contextmanager
def _writing(what: str, path: Path, then: str):
    """Turn an OSError while writing `what` to `path` into an OutputError saying what remains."""
    try:
        yield
    except OSError as exc:
        raise OutputError(f"cannot write {what} {path}: {exc.strerror or exc}; {then}") from None


# ----------------------------------------------------------------------------- command line


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage dump, exit 2
        raise UsageError(f"{message} (see --help)")


def _layer_weights(text: str) -> dict[str, float]:
    """"stem:1,stage2:0.5,stage3" -> {"stem": 1.0, "stage2": 0.5, "stage3": 1.0}."""
    layers: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, weight = item.partition(":")
        try:
            layers[name] = float(weight) if weight else 1.0
        except ValueError:
            raise argparse.ArgumentTypeError(f"layer weight {weight!r} of {name!r} is not a number") from None
    if not layers:
        raise argparse.ArgumentTypeError("expected LAYER[:WEIGHT][,LAYER[:WEIGHT]...]")
    return layers


def _style_weight(text: str) -> float | None:
    """A number, or "auto" (None: calibrated from the painting before training)."""
    return None if text.strip().lower() == "auto" else number(positive=False)(text)


def _odd_kernel(text: str) -> int:
    value = int_at_least(1)(text)
    if value % 2 == 0:
        raise argparse.ArgumentTypeError(f"must be odd, got {value}")
    return value


def build_parser(explicit_only: bool = False) -> argparse.ArgumentParser:
    """The CLI parser. With `explicit_only`, no defaults and nothing required: parsing then yields
    just the options present on the command line (used to tell what a resumed run overrides)."""
    p = _Parser(
        prog="python -m trainer.fast",
        description="Train a fast (Johnson et al.) style-transfer network for one painting.",
        epilog="Multi-GPU: torchrun --nproc_per_node N -m trainer.fast ... (--batch-size is per process).",
        argument_default=argparse.SUPPRESS if explicit_only else None,
    )

    def add(group, *flags, default=None, required=False, **kw):
        if explicit_only:
            group.add_argument(*flags, **kw)
        else:
            group.add_argument(*flags, default=default, required=required, **kw)

    io = p.add_argument_group("input and output")
    add(io, "--dataset", type=Path, required=True, metavar="PATH",
        help="folder of content photos (searched recursively; unusable files are skipped)")
    add(io, "--style", type=Path, required=True, metavar="IMAGE", help="the style image (painting)")
    add(io, "--out", type=Path, metavar="PATH",
        help="style file to write (default: runs/<name>/<name>.pt); checkpoint.pt and samples/ go next to it")
    add(io, "--name", help="style name (default: the style image's file name without extension)")
    add(io, "--title", help="title of the painting, stored in the style file")
    add(io, "--artist", help="artist of the painting, stored in the style file")
    add(io, "--year", help="year of the painting, stored in the style file")
    add(io, "--variant", choices=("auto", "full", "light"), default="auto",
        help="variant label stored in the style file (auto: 'light' if --width < 32 or --separable, else 'full')")

    tr = p.add_argument_group("training")
    add(tr, "--image-size", type=int_at_least(16), metavar="PX",
        help="size of the square training crops (default: 192 on CPU, 256 on CUDA)")
    add(tr, "--style-size", type=int_at_least(16), metavar="PX",
        help=f"short side the style image is resized to (default: {DEFAULT_STYLE_SIZE}, or the image's own "
             "short side if smaller)")
    add(tr, "--batch-size", type=int_at_least(1), metavar="N",
        help="images per step, per process (default: 4 on CPU, 8 on CUDA)")
    length = tr.add_mutually_exclusive_group()
    add(length, "--epochs", type=int_at_least(1), metavar="N",
        help="passes over the dataset (default: --steps 1200 on CPU, 10000 on CUDA)")
    add(length, "--steps", type=int_at_least(1), metavar="N",
        help="optimizer steps to train for (instead of --epochs)")
    add(tr, "--max-minutes", type=number(positive=True), metavar="M",
        help="stop after M minutes of training even if steps remain, and write the style file with "
             "the steps done (a fixed time budget, e.g. on a borrowed GPU); --resume continues "
             "(default: no limit)")
    add(tr, "--lr", type=number(positive=True), default=1e-3, help="Adam learning rate (default: 1e-3)")
    add(tr, "--content-weight", type=number(positive=False), metavar="W",
        help="content loss weight (default: the loss net's default)")
    add(tr, "--style-weight", type=_style_weight, metavar="W|auto",
        help="style loss weight (default: auto: for efficientnet-lite0, the weight that makes the "
             f"photos' own style loss {STYLE_BUDGET['efficientnet-lite0']:g}, measured on {PROBE_IMAGES} "
             "of them before training; for vgg19 its default weight)")
    add(tr, "--tv-weight", type=number(positive=False), metavar="W",
        help="total-variation loss weight (default: 0 with efficientnet-lite0, else the loss net's default)")
    add(tr, "--smoothing", type=number(positive=False), default=0.0, metavar="T",
        help="softmax smoothing of the style features before their Gram matrices (Wang et al. 2021), "
             "temperature T times the features' std; 0: off (default: 0)")
    add(tr, "--stability-weight", type=number(positive=False), default=STABILITY_WEIGHT, metavar="W",
        help="weight of the compound stability loss (Wang et al. 2020): the stylized, slightly warped "
             "crop against the stylization of the warped, noisy crop; makes video flicker less; "
             "0: off (default: 2000; README 'The bundled styles' has its effect on flicker; it costs "
             "about 30%% more time per step)")
    add(tr, "--stability-shift", type=number(positive=False), default=2.0, metavar="PX",
        help="largest random shift of that warp, in pixels, sub-pixel included (default: 2)")
    add(tr, "--stability-rotate", type=number(positive=False), default=1.0, metavar="DEG",
        help="largest random rotation of that warp, in degrees (default: 1)")
    add(tr, "--stability-noise", type=number(positive=False), default=0.02, metavar="SIGMA",
        help="std of the Gaussian noise added to the warped crop, on the 0-1 scale (default: 0.02, "
             "about 5 of 255: webcam sensor noise)")
    add(tr, "--loss-net", choices=LOSS_NET_CHOICES, default="auto",
        help="network measuring the perceptual loss (auto: VGG19 if its weights are available, else "
             "efficientnet-lite0)")
    add(tr, "--vgg-weights", type=Path, metavar="PATH", help="VGG19 state-dict file for --loss-net vgg19/auto")
    add(tr, "--style-layers", type=_layer_weights, metavar="L[:W],...",
        help="style layers of the loss net and their weights, e.g. stem:1,stage2:1,stage3:0.5 "
             "(default: stem,stage2,stage3,stage4:0.5 with efficientnet-lite0, else the loss net's own)")
    add(tr, "--content-layer", metavar="LAYER",
        help="content layer of the loss net (default: stage2 with efficientnet-lite0, else the loss net's own)")
    add(tr, "--seed", type=int, default=0, help="random seed of weights and data order (default: 0)")

    net = p.add_argument_group("network (TransformerNet)")
    add(net, "--width", type=int_at_least(1),
        help="channels of the first layer (default: 16 on CPU, the light network; 32 on CUDA)")
    add(net, "--res-blocks", type=int_at_least(0), default=5, help="residual blocks (default: 5)")
    add(net, "--outer-kernel", type=_odd_kernel,
        help="kernel size of the first and last convolutions, odd (default: 5 on CPU, 9 on CUDA)")
    add(net, "--separable", action=argparse.BooleanOptionalAction, default=False,
        help="depthwise-separable residual convolutions (lighter, for CPU playback)")
    add(net, "--blur-downsample", action=argparse.BooleanOptionalAction, default=False,
        help="blur before each stride-2 convolution (Zhang 2019 anti-aliasing). Off by default: "
             "with the stability loss it did not reduce pan flicker (The Starry Night, 300 steps: "
             "1 px pan 11.3 with it, 11.0 without) and it lowered edge correlation (0.54 vs 0.62)")
    add(net, "--upsample", choices=UPSAMPLE_MODES, default="nearest",
        help="decoder upsampling. bilinear cuts the trained net's pan flicker by 13-27%% but "
             "makes bf16 CPU playback about 20%% slower at 640x480, and the app's flow stabilizer "
             "removes most flicker anyway (default: nearest)")

    rt = p.add_argument_group("runtime")
    add(rt, "--device", choices=("auto", "cpu", "cuda"), default="auto",
        help="where to train (auto: CUDA if available)")
    add(rt, "--amp", action=argparse.BooleanOptionalAction,
        help="mixed precision autocast (default: on for CUDA: bf16, or fp16 with gradient scaling; "
             "on CPU bf16, on by default only where the CPU computes bf16 natively)")
    add(rt, "--threads", type=int_at_least(1), metavar="N",
        help="CPU threads for torch's operators (default: torch's choice, usually the core count); "
             "on a busy machine 1 can be several times faster than oversubscribed cores")
    add(rt, "--workers", type=int_at_least(0), metavar="N",
        help="DataLoader worker processes (default: min(4, CPU count - 1); 0 loads in the main process)")
    add(rt, "--checkpoint-every", type=int_at_least(0), default=500, metavar="N",
        help="write checkpoint.pt every N steps (default: 500; 0: only at the end and on Ctrl-C)")
    add(rt, "--resume", nargs="?", const="auto", metavar="PATH",
        help="continue from <out dir>/checkpoint.pt, or from PATH")
    add(rt, "--sample-every", type=int_at_least(0), default=500, metavar="N",
        help="write a grid of a fixed batch stylized to <out dir>/samples/step_XXXXXX.png every N steps "
             "and at the end (default: 500; 0: never)")
    add(rt, "--log-every", type=int_at_least(1), default=50, metavar="N",
        help="log losses and images/s every N steps (default: 50)")
    return p


# ----------------------------------------------------------------------------- distributed


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_from_env() -> DistInfo:
    """torchrun's RANK / WORLD_SIZE / LOCAL_RANK, or a single process."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return DistInfo()
        return DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    except (KeyError, ValueError):
        raise UsageError("WORLD_SIZE is set but RANK is missing or not a number; launch with torchrun") from None


def _barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def _broadcast(obj: Any, info: DistInfo) -> Any:
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# ----------------------------------------------------------------------------- setup helpers


def _slug(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "style"


def output_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    """(style file, checkpoint path) for parsed arguments."""
    name = args.name or args.style.stem
    out = args.out or Path("runs") / _slug(name) / f"{_slug(name)}.pt"
    if args.resume not in (None, "auto"):
        checkpoint = Path(args.resume)
    else:
        checkpoint = out.parent / ckpt.FILENAME
    return out, checkpoint


def build_perceptual(args: argparse.Namespace, device: torch.device) -> PerceptualLoss:
    """The perceptual loss for `args`, with unset weights from the loss net's defaults.

    Tests may replace this module attribute to train against a tiny loss net.
    """
    from trainer.gatys import build_perceptual_loss  # the shared builder (loss net + default weights)

    return build_perceptual_loss(
        loss_net=args.loss_net,
        vgg_weights=args.vgg_weights,
        device=device,
        content_weight=args.content_weight,
        style_weight=args.style_weight,
        tv_weight=args.tv_weight,
        style_layers=args.style_layers,
        content_layer=args.content_layer,
    )


def _apply_recipe_defaults(args: argparse.Namespace, device: torch.device) -> None:
    """Fill the settings left unset with the default recipe of `device` and of the loss net."""
    for key, value in DEVICE_DEFAULTS["cuda" if device.type == "cuda" else "cpu"].items():
        if key == "steps":
            if args.steps is None and args.epochs is None:
                args.steps = value
        elif getattr(args, key) is None:
            setattr(args, key, value)
    try:
        args.loss_net = resolve_loss_net_name(args.loss_net, args.vgg_weights)
    except ValueError as exc:
        raise UsageError(f"--loss-net: {exc}") from None
    for key, value in FAST_LOSS_DEFAULTS.get(args.loss_net, {}).items():
        if getattr(args, key) is None:
            setattr(args, key, value)


@torch.no_grad()
def auto_style_weight(perceptual: PerceptualLoss, paths: list[Path], image_size: int) -> tuple[float, float]:
    """(style weight, the photos' unweighted style loss) for the budget of `perceptual`'s loss net.

    The probe is the first PROBE_IMAGES photos, centre-cropped: a fixed, cheap sample.
    """
    ds = ImageFolderDataset(paths[:PROBE_IMAGES], image_size, random_crop=False, flip=False)
    device = perceptual.net.mean.device
    photos = torch.stack([ds[i] for i in range(len(ds))]).to(device)
    distance = perceptual.style_distance(photos)
    return STYLE_BUDGET[perceptual.net.name] / max(distance, 1e-8), distance


def _resolve_amp(args: argparse.Namespace, device: torch.device) -> torch.dtype | None:
    if device.type == "cuda":
        if args.amp is False:
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    wanted = cpu_bf16_supported() if args.amp is None else args.amp
    return torch.bfloat16 if wanted else None


def _default_workers() -> int:
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def _variant(args: argparse.Namespace) -> str:
    if args.variant and args.variant != "auto":
        return args.variant
    return "light" if args.width < 32 or args.separable else "full"


def _apply_checkpoint_args(args: argparse.Namespace, explicit: set[str], saved: dict[str, Any]) -> None:
    """Take settings not given on the command line from the checkpoint; check the rest."""
    for key in _ARCHITECTURE:
        if key in explicit and key in saved and saved[key] != getattr(args, key):
            raise UsageError(
                f"--{key.replace('_', '-')} {getattr(args, key)} differs from the checkpoint's "
                f"{saved[key]}; the network cannot change on resume"
            )
    changed = []
    for key in _RESUMABLE:
        if key not in saved:
            if key in _LEGACY_ARCHITECTURE and key not in explicit:  # a checkpoint from before the field
                setattr(args, key, _LEGACY_ARCHITECTURE[key])
            continue
        if key in explicit or (key in ("steps", "epochs") and explicit & {"steps", "epochs"}):
            value = getattr(args, key)
            if key in _TRAJECTORY and value is not None and value != saved[key]:
                changed.append(f"--{key.replace('_', '-')} {saved[key]} -> {value}")
            continue
        value = saved[key]
        if key == "vgg_weights" and value is not None:
            value = Path(value)
        setattr(args, key, value)
    if changed:
        logger.warning("resuming with changed settings (%s); the result will differ from an "
                       "uninterrupted run", ", ".join(changed))


def _held_batch(paths: list[Path], image_size: int) -> torch.Tensor:
    """The first few images, centre-cropped: the fixed batch the sample grids show."""
    ds = ImageFolderDataset(paths[:SAMPLE_IMAGES], image_size, random_crop=False, flip=False)
    return torch.stack([ds[i] for i in range(len(ds))])


@torch.no_grad()
def write_sample(model: TransformerNet, batch: torch.Tensor, path: Path, amp: torch.dtype | None) -> None:
    """Inputs on the top row, their stylization below, as one PNG."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    x = batch.to(device)
    with _autocast(device, amp):
        y = model(x).float().clamp_(0, 1)
    model.train(was_training)
    grid = torch.cat([torch.cat(list(x), dim=-1), torch.cat(list(y), dim=-1)], dim=-2)
    save_image(grid.unsqueeze(0), path)


def _init_worker(parent: int, worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C to the main process, which checkpoints and shuts them down,
    and die with it: a killed main process (kill -9, out of memory) shuts nothing down, and a worker
    would otherwise live on, holding its memory, until it noticed (seen: 15-20 s, 445 MB)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
        except (OSError, AttributeError):  # no prctl in this libc: fall back to torch's own watchdog
            return
        if os.getppid() != parent:  # the main process died before prctl took effect
            os._exit(0)


def _autocast(device: torch.device, amp: torch.dtype | None):
    return torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext()


@dataclass(frozen=True)
class Stability:
    """The compound stability regularisation of a training run (see `trainer.losses.stability_loss`)."""

    weight: float
    shift: float = 2.0  # px
    rotate: float = 1.0  # degrees
    noise: float = 0.02  # std on the 0-1 scale

    @property
    def margin(self) -> int:
        """Border left out of the loss: the shift plus the rotation's reach at a 192 px crop's edge."""
        return math.ceil(self.shift + math.radians(self.rotate) * 96) + 2


def train_step(
    batch: torch.Tensor,
    model: nn.Module,
    perceptual: PerceptualLoss,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    device: torch.device,
    amp: torch.dtype | None,
    channels_last: bool,
    stability: Stability | None = None,
    step_seed: int = 0,
) -> torch.Tensor:
    """One optimizer step on a uint8 batch; returns the (content, style, tv[, stability]) terms, on device.

    The stability perturbation is drawn from `step_seed` alone (not the global RNG), so a resumed
    run draws the same warps and noise as an uninterrupted one. Shared with trainer.bench so the
    benchmark times exactly the training step.
    """
    x = batch.to(device, non_blocking=True)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x = x.float().div_(255.0)
    with _autocast(device, amp):
        target = perceptual.content_features(x)
        y = model(x)
        terms = perceptual(y, target)
        total = terms.total
        if stability is not None:
            gen = torch.Generator().manual_seed(step_seed)
            theta = random_warp(x.shape[0], stability.shift, stability.rotate, tuple(x.shape[-2:]), gen, device)
            moved = apply_warp(x, theta)
            moved = moved + stability.noise * torch.randn(moved.shape, generator=gen).to(device, moved.dtype)
            stab = stability.weight * stability_loss(apply_warp(y.float(), theta), model(moved), stability.margin)
            total = total + stab
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(total).backward()
    scaler.step(optimizer)
    scaler.update()
    values = [terms.content, terms.style, terms.tv] + ([stab] if stability is not None else [])
    return torch.stack(values).detach().float()


class _StopFlag:
    """Ctrl-C / SIGTERM ask the loop to stop after the current step (and checkpoint); a second
    Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_StopFlag":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum
        for sig, handler in self._previous.items():  # the next signal acts as usual
            signal.signal(sig, handler)

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


# ----------------------------------------------------------------------------- training


def train(args: argparse.Namespace, explicit: set[str], info: DistInfo) -> int:
    """Run a training as configured by parsed `args`; returns the exit status."""
    _, resume_path = output_paths(args)
    payload = None
    if args.resume is not None:
        try:
            payload = ckpt.load_checkpoint(resume_path)
        except ckpt.CheckpointError as exc:
            raise UsageError(f"--resume: {exc}") from None
        _apply_checkpoint_args(args, explicit, payload.get("args", {}))
    # After the checkpoint's settings (its --name) are in: new checkpoints always go next to --out.
    out = output_paths(args)[0]
    checkpoint_path = out.parent / ckpt.FILENAME
    name = args.name or args.style.stem

    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if device.type == "cuda":
        if info.enabled:
            if info.local_rank >= torch.cuda.device_count():
                raise UsageError(f"LOCAL_RANK {info.local_rank} but only {torch.cuda.device_count()} GPU(s)")
            device = torch.device("cuda", info.local_rank)
        elif device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    amp = _resolve_amp(args, device)
    channels_last = device.type == "cuda"

    # Style image first: a typo there should not wait for a dataset scan or a loss net build.
    try:
        style_pil = load_image(args.style)
    except ImageLoadError as exc:
        raise UsageError(f"--style: {exc}") from None
    style_size = args.style_size or min(DEFAULT_STYLE_SIZE, min(style_pil.size))
    _apply_recipe_defaults(args, device)

    if info.enabled:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                device_id=device if device.type == "cuda" else None)
    try:
        return _train(args, explicit, info, device, amp, channels_last, out, checkpoint_path, resume_path,
                      payload, name, style_pil, style_size)
    finally:
        if info.enabled and dist.is_initialized():
            dist.destroy_process_group()


def _train(args, explicit, info, device, amp, channels_last, out, checkpoint_path, resume_path, payload,
           name, style_pil, style_size) -> int:
    # Dataset: rank 0 scans (and warns), the others get its list.
    scanned: list[str] | str
    if info.is_main:
        try:
            check_writable(out)  # fail now, not after hours of training
            scanned = [str(p) for p in scan_images(args.dataset).paths]
        except OSError as exc:
            scanned = f"--out: cannot create files in {out.parent} ({exc.strerror or exc})"
        except DatasetError as exc:
            scanned = f"--dataset: {exc}"
    else:
        scanned = ""
    scanned = _broadcast(scanned, info)
    if isinstance(scanned, str):
        raise UsageError(scanned)
    paths = [Path(p) for p in scanned]
    global_batch = args.batch_size * info.world_size
    if len(paths) < global_batch:
        raise UsageError(
            f"--dataset: {len(paths)} usable image(s), fewer than one batch of {global_batch} "
            f"(--batch-size {args.batch_size} x {info.world_size} process(es))"
        )

    # Loss network and style targets.
    try:
        perceptual = build_perceptual(args, device)
    except LossNetUnavailable as exc:
        raise UsageError(f"--loss-net {args.loss_net}: {exc}") from None
    except ValueError as exc:  # a --style-layers / --content-layer name the net does not have
        raise UsageError(str(exc)) from None
    perceptual = perceptual.to(device)
    if channels_last:
        perceptual.net.to(memory_format=torch.channels_last)
    perceptual.smoothing = args.smoothing
    perceptual.set_style_image(pil_to_tensor(resize_short_side(style_pil, style_size)).to(device))  # fp32, once
    if args.style_weight is None and perceptual.net.name in STYLE_BUDGET:
        perceptual.style_weight, distance = auto_style_weight(perceptual, paths, args.image_size)
        args.style_auto = {"budget": STYLE_BUDGET[perceptual.net.name], "photo_style_loss": distance}
        if info.is_main:
            logger.info("style weight auto: %.4g (the photos' style loss %.4g, budget %g)",
                        perceptual.style_weight, distance, STYLE_BUDGET[perceptual.net.name])
    # Record what was resolved so a resume (and the style file) knows it.
    args.loss_net = perceptual.net.name
    args.content_weight = float(perceptual.content_weight)
    args.style_weight = float(perceptual.style_weight)
    args.tv_weight = float(perceptual.tv_weight)
    args.style_size = style_size

    # Data.
    torch.manual_seed(args.seed)
    dataset = ImageFolderDataset(paths, args.image_size, uint8=True)
    sampler = ResumableSampler(len(dataset), args.seed, info.rank, info.world_size)
    workers = _default_workers() if args.workers is None else args.workers
    loader = DataLoader(
        dataset, batch_size=args.batch_size, sampler=sampler, drop_last=True, num_workers=workers,
        pin_memory=device.type == "cuda", persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        worker_init_fn=functools.partial(_init_worker, os.getpid()) if workers > 0 else None,
    )
    batches_per_epoch = sampler.per_epoch // args.batch_size
    total_steps = args.steps if args.steps is not None else args.epochs * batches_per_epoch

    # Model and optimizer.
    config = TransformerConfig(args.width, args.res_blocks, args.outer_kernel, args.separable,
                               blur_downsample=args.blur_downsample, upsample=args.upsample)
    stability = Stability(args.stability_weight, args.stability_shift, args.stability_rotate,
                          args.stability_noise) if args.stability_weight > 0 else None
    model = TransformerNet(config).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scaler = torch.amp.GradScaler(device.type, enabled=amp is torch.float16)

    step, epoch, batch_in_epoch = 0, 0, 0
    totals = {"training_seconds": 0.0, "images": 0.0}
    if payload is not None:
        try:
            ckpt.restore(payload, model=model, optimizer=optimizer, scaler=scaler)
        except ckpt.CheckpointError as exc:
            raise UsageError(f"--resume {resume_path}: {exc}") from None
        for group in optimizer.param_groups:  # an explicit new --lr applies from here on
            group["lr"] = args.lr
        step = int(payload["step"])
        data = payload["data"]
        epoch, batch_in_epoch = int(data["epoch"]), int(data["batch_in_epoch"])
        if data["batches_per_epoch"] != batches_per_epoch or data["world_size"] != info.world_size:
            if batch_in_epoch:
                logger.warning("the dataset, batch size or process count changed since the checkpoint; "
                               "continuing with the next epoch")
                epoch, batch_in_epoch = epoch + 1, 0
        totals.update(payload.get("totals", {}))
        if info.is_main:
            logger.info("resuming from %s at step %d (epoch %d, batch %d)", resume_path, step, epoch,
                        batch_in_epoch)
    elif info.is_main and checkpoint_path.exists():
        logger.warning("%s exists and will be overwritten; pass --resume to continue it", checkpoint_path)

    train_model: nn.Module = model
    if info.enabled:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    held = _held_batch(paths, args.image_size) if info.is_main and args.sample_every else None
    saved_args = {**{k: v for k, v in vars(args).items() if k != "resume"}, "name": name}

    def stopped() -> str:
        kept = "the previous checkpoint is kept (continue with --resume)" if checkpoint_path.exists() \
            else "no checkpoint was written"
        return f"training stopped at step {step}; {kept}"

    def save_ckpt() -> None:
        with _writing("the checkpoint", checkpoint_path, stopped()):
            ckpt.save_checkpoint(
                checkpoint_path, model=model, optimizer=optimizer,
                scaler=scaler if scaler.is_enabled() else None, step=step, epoch=epoch,
                batch_in_epoch=batch_in_epoch, batches_per_epoch=batches_per_epoch,
                world_size=info.world_size, args=saved_args, totals=totals,
            )

    def sample() -> None:
        path = out.parent / "samples" / f"step_{step:06d}.png"
        with _writing("the sample image", path, stopped()):
            write_sample(model, held, path, amp)

    if info.is_main:
        logger.info(
            "training %s: %d image(s), %d step(s) of %d x %d px, batch %d%s, %s on %s%s, %s loss "
            "(content %g, style %g, tv %g)",
            name, len(paths), total_steps, args.image_size, args.image_size, args.batch_size,
            f" x {info.world_size} processes" if info.enabled else "", _describe(config), device,
            f" with {str(amp).removeprefix('torch.')} autocast" if amp else "", perceptual.net.name,
            perceptual.content_weight, perceptual.style_weight, perceptual.tv_weight,
        )

    bar = None
    if info.is_main:
        bar = tqdm(total=total_steps, initial=step, desc=name, unit="step", dynamic_ncols=True, smoothing=0.1)
    stop_check = 1 if not info.enabled else min(10, args.log_every)
    interrupted = out_of_time = False
    deadline = time.monotonic() + 60.0 * args.max_minutes if args.max_minutes else None
    model.train()
    sums = torch.zeros(4 if stability else 3, device=device)  # running content, style, tv[, stability]: on device
    window_steps, window_start = 0, time.perf_counter()
    tick = time.perf_counter()  # training_seconds runs with every step, so a checkpoint's rate is right
    last_sample = -1

    try:
        # While the bar is shown, log lines go through tqdm.write so they don't tear it.
        with _StopFlag() as stop, logging_redirect_tqdm() if bar is not None else contextlib.nullcontext():
            while step < total_steps and not (interrupted or out_of_time):
                sampler.set_epoch(epoch)
                sampler.set_start(batch_in_epoch * args.batch_size)
                for batch in loader:
                    sums += train_step(
                        batch, train_model, perceptual, optimizer, scaler, device, amp, channels_last, stability,
                        step_seed=sample_seed(args.seed, step, info.rank),
                    )
                    step += 1
                    batch_in_epoch += 1
                    window_steps += 1
                    totals["images"] += global_batch
                    now = time.perf_counter()
                    totals["training_seconds"] += now - tick
                    tick = now
                    if batch_in_epoch == batches_per_epoch:
                        epoch, batch_in_epoch = epoch + 1, 0

                    if step % args.log_every == 0 or step == total_steps:
                        # The one host sync (and, under DDP, all-reduce) of the window.
                        content, style, tv, *stab = _window_means(sums, window_steps, info)
                        if not math.isfinite(content + style + tv + sum(stab)):
                            raise UsageError(f"the loss became {content + style + tv + sum(stab)} at step {step}; "
                                             "try a lower --lr or --no-amp")
                        now = time.perf_counter()
                        ips = window_steps * global_batch / max(now - window_start, 1e-9)
                        if bar is not None:
                            bar.set_postfix(content=f"{content:.3g}", style=f"{style:.3g}", tv=f"{tv:.3g}",
                                            img_s=f"{ips:.1f}", refresh=False)
                        if info.is_main:
                            logger.info("step %d/%d: content %.4g style %.4g tv %.4g%s, %.1f images/s",
                                        step, total_steps, content, style, tv,
                                        f" stability {stab[0]:.4g}" if stab else "", ips)
                        sums.zero_()
                        window_steps, window_start = 0, now
                    if bar is not None:
                        bar.update(1)
                    if info.is_main and args.checkpoint_every and step % args.checkpoint_every == 0 \
                            and step < total_steps:
                        save_ckpt()
                    if held is not None and step % args.sample_every == 0:
                        sample()
                        last_sample = step
                    if step % stop_check == 0:
                        interrupted = _should_stop(stop.signum is not None, info, device)
                        out_of_time = not interrupted and deadline is not None \
                            and _should_stop(time.monotonic() >= deadline, info, device)
                        if interrupted or out_of_time:
                            break
                    if step >= total_steps:
                        break
    finally:
        totals["training_seconds"] += time.perf_counter() - tick
        if bar is not None:
            bar.close()

    if interrupted:
        if info.is_main:
            save_ckpt()
            logger.warning("interrupted at step %d of %d; checkpoint saved to %s (continue with --resume)",
                           step, total_steps, checkpoint_path)
        _barrier(info)
        return INTERRUPTED_EXIT

    if out_of_time and info.is_main:
        logger.warning("--max-minutes %g reached at step %d of %d; writing the style file (continue with "
                       "--resume)", args.max_minutes, step, total_steps)
    if info.is_main:
        save_ckpt()
        if held is not None and last_sample != step:
            sample()
        meta = _meta(args, name, perceptual, config, len(paths), step, totals, info, amp, device)
        with _writing("the style file", out, f"the checkpoint {checkpoint_path} holds the trained network: "
                      "free some space and run the same command with --resume"):
            save_style(out, model, meta, {perceptual.net.name: perceptual.style_targets})
        logger.info("wrote %s (%d steps, %.0f s, %.1f images/s)", out, step, totals["training_seconds"],
                    meta["images_per_second"])
    _barrier(info)
    return 0


def _window_means(sums: torch.Tensor, steps: int, info: DistInfo) -> list[float]:
    """The loss terms averaged over the window's steps and over every process. All ranks get the
    same numbers, so a NaN on one rank stops every rank at the same step, instead of that rank
    raising alone and the others hanging in their next all-reduce."""
    if info.enabled:
        sums = sums.clone()
        dist.all_reduce(sums)
        steps *= info.world_size
    return (sums / steps).tolist()


def _should_stop(local: bool, info: DistInfo, device: torch.device) -> bool:
    if not info.enabled:
        return local
    flag = torch.tensor([1.0 if local else 0.0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)  # every rank stops after the same step
    return bool(flag.item())


def _describe(config: TransformerConfig) -> str:
    return (f"TransformerNet(width {config.width}, {config.res_blocks} res blocks, "
            f"{config.outer_kernel}x{config.outer_kernel} outer{', separable' if config.separable else ''}"
            f"{', blur before stride 2' if config.blur_downsample else ''}, {config.upsample} upsampling)")


def _meta(args, name, perceptual, config, dataset_size, step, totals, info, amp, device) -> dict[str, Any]:
    seconds = float(totals["training_seconds"])
    return ckpt.plain({
        "name": name,
        "title": args.title,
        "artist": args.artist,
        "year": args.year,
        "style_image": args.style.name,
        "style_source": str(args.style),
        "variant": _variant(args),
        "loss_net": perceptual.net.name,
        "content_weight": float(perceptual.content_weight),
        "style_weight": float(perceptual.style_weight),
        "tv_weight": float(perceptual.tv_weight),
        "style_layers": {k: float(v) for k, v in perceptual.style_layers.items()},
        "content_layer": perceptual.content_layer,
        "image_size": args.image_size,
        "style_size": args.style_size,
        "batch_size": args.batch_size,
        "world_size": info.world_size,
        "global_batch_size": args.batch_size * info.world_size,
        "steps": step,
        "lr": args.lr,
        "seed": args.seed,
        "training_seconds": round(seconds, 3),
        "images_per_second": round(float(totals["images"]) / seconds, 3) if seconds > 0 else 0.0,
        "dataset_size": dataset_size,
        "dataset": str(args.dataset),
        "architecture": config.to_dict(),
        "style_weight_auto": getattr(args, "style_auto", None),
        "smoothing": float(perceptual.smoothing),
        "stability": {"weight": args.stability_weight, "shift": args.stability_shift,
                      "rotate": args.stability_rotate, "noise": args.stability_noise},
        "amp": str(amp).removeprefix("torch.") if amp else None,
        "device": device.type,
        "torch_version": str(torch.__version__),
        "trainer": "trainer.fast",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })


# ----------------------------------------------------------------------------- entry point


def _setup_logging(info: DistInfo) -> int:
    """Log lines to stderr unless the caller configured logging; returns the level to restore."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    trainer_logger = logging.getLogger("trainer")
    previous = trainer_logger.level
    if previous == logging.NOTSET:  # other ranks: warnings and errors only
        trainer_logger.setLevel(logging.INFO if info.is_main else logging.WARNING)
    return previous


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (0, 2 for bad input, 130 when interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    info = DistInfo()
    previous_level = logging.getLogger("trainer").level
    try:
        info = dist_from_env()
        previous_level = _setup_logging(info)
        args = build_parser().parse_args(argv)
        explicit = set(vars(build_parser(explicit_only=True).parse_args(argv)))
        return train(args, explicit, info)
    except UsageError as exc:
        if info.is_main:
            print(f"error: {exc}", file=sys.stderr)
        return 2
    except OutputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C, or one before training started
        if info.is_main:
            print("error: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT
    finally:
        logging.getLogger("trainer").setLevel(previous_level)


if __name__ == "__main__":
    raise SystemExit(main())
