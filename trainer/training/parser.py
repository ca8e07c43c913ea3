"""The command line of `python -m trainer.fast`: every flag, its type and its help."""
from __future__ import annotations

import argparse
from pathlib import Path

from trainer.cliargs import int_at_least, number
from trainer.training.errors import UsageError
from trainer.training.recipe import (
    DEFAULT_STYLE_SIZE, LOSS_NET_CHOICES, PROBE_IMAGES, RECIPES, STABILITY_WEIGHT, STYLE_BUDGET,
)
from trainer.transformer import UPSAMPLE_MODES

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


def _per_recipe(key: str) -> str:
    """"192 on a CPU with native bf16, 160 on other CPUs, 256 on CUDA" for a RECIPES key."""
    bf16, fp32, cuda = (RECIPES[name][key] for name in ("cpu-bf16", "cpu-fp32", "cuda"))
    return f"{bf16} on a CPU with native bf16, {fp32} on other CPUs, {cuda} on CUDA"


def build_parser(explicit_only: bool = False) -> argparse.ArgumentParser:
    """The CLI parser. With `explicit_only`, no defaults and nothing required: parsing then yields
    just the options present on the command line (used to tell what a resumed run overrides)."""
    p = _Parser(
        prog="python -m trainer.fast",
        description="Train a fast (Johnson et al.) style-transfer network for one painting. Settings not "
                    "given come from the default recipe of the device and precision, which the first log "
                    "line names with its reason: cpu-bf16 (a CPU with native bf16, steps in bf16: "
                    f"{RECIPES['cpu-bf16']['image_size']} px crops, {RECIPES['cpu-bf16']['steps']} steps, "
                    "6-7 min on 2 cores), cpu-fp32 (other CPUs, e.g. AVX2 only, steps in fp32: "
                    f"{RECIPES['cpu-fp32']['image_size']} px crops, {RECIPES['cpu-fp32']['steps']} steps, "
                    "about 12 min on 2 AVX2 cores) or cuda.",
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
    add(io, "--force", action="store_true", default=False,
        help="replace an --out style file of another painting (or a file that is not a style file), "
             "and let --resume continue a checkpoint trained on another painting (default: refuse)")
    add(io, "--name", help="style name (default: the style image's file name without extension)")
    add(io, "--title", help="title of the painting, stored in the style file")
    add(io, "--artist", help="artist of the painting, stored in the style file")
    add(io, "--year", help="year of the painting, stored in the style file")
    add(io, "--variant", choices=("auto", "full", "light"), default="auto",
        help="variant label stored in the style file (auto: 'light' if --width < 32 or --separable, else 'full')")

    tr = p.add_argument_group("training")
    add(tr, "--image-size", type=int_at_least(16), metavar="PX",
        help=f"size of the square training crops (default: the recipe's, {_per_recipe('image_size')})")
    add(tr, "--style-size", type=int_at_least(16), metavar="PX",
        help=f"short side the style image is resized to (default: {DEFAULT_STYLE_SIZE}, or the image's own "
             "short side if smaller)")
    add(tr, "--batch-size", type=int_at_least(1), metavar="N",
        help="images per step, per process (default: 4 on CPU, 8 on CUDA)")
    length = tr.add_mutually_exclusive_group()
    add(length, "--epochs", type=int_at_least(1), metavar="N",
        help=f"passes over the dataset (default: the recipe's --steps, {_per_recipe('steps')})")
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
             "on CPU bf16, on by default only where the CPU computes bf16 natively and no "
             "ONEDNN_MAX_CPU_ISA / ATEN_CPU_CAPABILITY / NSTCAM_NO_NATIVE_BF16 setting rules it out; "
             "the CPU recipe follows: --no-amp trains the fp32 recipe)")
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


