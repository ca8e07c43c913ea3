"""The default recipe and the resume policy of fast training.

What a plain `--dataset D --style S` trains on each device, the loss settings per loss net, the
automatic style weight, where the outputs go, and which settings a resumed run takes from its
checkpoint (and which it may not change).
"""
from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path
from typing import Any

import torch

from trainer import checkpoint as ckpt
from trainer.dataset import ImageFolderDataset
from trainer.devices import bf16_ruled_out_by_env, cpu_bf16_supported
from trainer.lossnets import resolve_loss_net_name
from trainer.perceptual import PerceptualLoss
from trainer.stylefile import StyleFileError, load_style
from trainer.training.errors import UsageError

logger = logging.getLogger("trainer.fast")

LOSS_NET_CHOICES = ("auto", "vgg19", "efficientnet-lite0")
DEFAULT_STYLE_SIZE = 384  # the bundled pack's: strokes large enough to read at 192-320 px

# The default recipe, per kind of device: what a plain `--dataset D --style S` trains. A CPU's
# recipe follows the precision its steps run in (`resolve_amp`):
# - "cpu-bf16" (native bf16: AVX512-BF16 / AMX): the bundled pack's light network (5x5 outer
#   kernels, width 16) on 192 px crops, 1,200 steps: 6-7 minutes on 2 idle cores.
# - "cpu-fp32" (every other CPU, e.g. AVX2 only): an fp32 step of that recipe took 1.26 s on 2
#   AVX2 cores, 25 minutes in all. 160 px crops cost 0.72x the step (measured side by side under
#   AVX2 emulation) and 800 steps are 2/3 of them: 0.48x the work, about 12 minutes there.
# - "cuda": Johnson's full network at the scale a GPU affords.
RECIPES: dict[str, dict[str, int]] = {
    "cpu-bf16": {"width": 16, "outer_kernel": 5, "image_size": 192, "batch_size": 4, "steps": 1200},
    "cpu-fp32": {"width": 16, "outer_kernel": 5, "image_size": 160, "batch_size": 4, "steps": 800},
    "cuda": {"width": 32, "outer_kernel": 9, "image_size": 256, "batch_size": 8, "steps": 10000},
}
_FP32_WHY = ("about 1.7x the cost of a bf16 step; sized to end within 15 minutes on 2 AVX2 cores "
             "(a bf16 CPU trains 192 px x 1200 steps)")

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
    "recipe",
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


def slug(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "style"


def output_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    """(style file, checkpoint path) for parsed arguments."""
    name = args.name or args.style.stem
    out = args.out or Path("runs") / slug(name) / f"{slug(name)}.pt"
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


def recipe_name(device: torch.device, amp: torch.dtype | None) -> str:
    """The key of RECIPES for a run on `device` whose steps autocast to `amp` (None: fp32)."""
    if device.type == "cuda":
        return "cuda"
    return "cpu-fp32" if amp is None else "cpu-bf16"


def apply_recipe_defaults(args: argparse.Namespace, device: torch.device, amp: torch.dtype | None) -> str:
    """Fill the settings left unset with the default recipe of `device` (and its precision `amp`) and
    of the loss net; returns the summary line that says which recipe, why, and what it set.

    `args.recipe` records the recipe whose values were used: a resumed run keeps its checkpoint's,
    and it is None when every setting was given.
    """
    name = recipe_name(device, amp)
    taken = []
    for key, value in RECIPES[name].items():
        if key == "steps":
            if args.steps is None and args.epochs is None:
                args.steps = value
                taken.append(f"{value} steps")
        elif getattr(args, key) is None:
            setattr(args, key, value)
            taken.append(f"{key.replace('_', ' ')} {value}")
    if taken:
        args.recipe = name
    elif not hasattr(args, "recipe"):
        args.recipe = None
    try:
        args.loss_net = resolve_loss_net_name(args.loss_net, args.vgg_weights)
    except ValueError as exc:
        raise UsageError(f"--loss-net: {exc}") from None
    for key, value in FAST_LOSS_DEFAULTS.get(args.loss_net, {}).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    what = ", ".join(taken) if taken else "nothing: every setting was given (or resumed)"
    return f"default recipe {name} ({_recipe_why(name, args.amp)}): {what}"


def _recipe_why(name: str, amp_flag: bool | None) -> str:
    if name == "cuda":
        return "a CUDA GPU"
    if name == "cpu-bf16":
        return "--amp: steps in bf16 autocast" if amp_flag else "native bf16 here: steps in bf16 autocast"
    if amp_flag is False:
        return f"--no-amp: steps in fp32, {_FP32_WHY}"
    capped = bf16_ruled_out_by_env()
    reason = f"bf16 not native: {capped}" if capped else "no native bf16 on this CPU"
    return f"{reason}, so steps run in fp32, {_FP32_WHY}"


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


def resolve_amp(args: argparse.Namespace, device: torch.device) -> torch.dtype | None:
    if device.type == "cuda":
        if args.amp is False:
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    native = cpu_bf16_supported()
    if args.amp and not native:
        capped = bf16_ruled_out_by_env()
        logger.warning("--amp: bf16 is not native on this CPU%s; it will likely train slower than fp32",
                       f" ({capped})" if capped else "")
    wanted = native if args.amp is None else args.amp
    return torch.bfloat16 if wanted else None


def variant(args: argparse.Namespace) -> str:
    if args.variant and args.variant != "auto":
        return args.variant
    return "light" if args.width < 32 or args.separable else "full"


def apply_checkpoint_args(args: argparse.Namespace, explicit: set[str], saved: dict[str, Any]) -> None:
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




def check_out(out: Path, painting: Path, force: bool) -> None:
    """Refuse an --out that would lose something: a folder (the style file is a file in it), or a
    style file of another painting (unless `force`). Rerunning the same painting may replace it."""
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give the style file's name, e.g. --out {out / (painting.stem + '.pt')}")
    if not out.exists() or force:
        return
    try:
        existing = load_style(out).meta.get("style_image")
    except StyleFileError:
        raise UsageError(f"--out {out} exists and is not a style file; choose another --out "
                         "(or pass --force to replace it)") from None
    if existing != painting.name:
        raise UsageError(f"--out {out} is the style of another painting ({existing}, not {painting.name}); "
                         "choose another --out (or pass --force to replace it)")


def check_resumed_painting(painting: Path, saved: dict[str, Any], checkpoint: Path, force: bool) -> None:
    """A checkpoint continues the painting it was trained on: another one would mix two styles
    under the first one's name (unless `force`)."""
    trained = saved.get("style")
    if trained is None or force or Path(trained).name == painting.name:
        return
    raise UsageError(f"--resume {checkpoint} was trained on {Path(trained).name}, not --style {painting.name}; "
                     "give the same painting (or pass --force to continue with the new one)")
