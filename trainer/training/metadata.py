"""What a style file records about the training that made it, and the one-line network summary."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import torch

from trainer import checkpoint as ckpt
from trainer.perceptual import PerceptualLoss
from trainer.training.config import RunConfig
from trainer.training.recipe import variant
from trainer.transformer import TransformerConfig

def describe(config: TransformerConfig) -> str:
    """The network in words, for the log line that starts a run."""
    return (f"TransformerNet(width {config.width}, {config.res_blocks} res blocks, "
            f"{config.outer_kernel}x{config.outer_kernel} outer{', separable' if config.separable else ''}"
            f"{', blur before stride 2' if config.blur_downsample else ''}, {config.upsample} upsampling)")


def style_meta(run: RunConfig, perceptual: PerceptualLoss, config: TransformerConfig, dataset_size: int,
               step: int, totals: dict[str, float]) -> dict[str, Any]:
    """The style file's `meta`: the painting, the recipe as trained, and its cost."""
    args, info, amp = run.settings, run.info, run.amp
    seconds = float(totals["training_seconds"])
    return ckpt.plain({
        "name": run.name,
        "title": args.title,
        "artist": args.artist,
        "year": args.year,
        "style_image": args.style.name,
        "style_source": str(args.style),
        "variant": variant(args),
        "loss_net": perceptual.net.name,
        "content_weight": float(perceptual.content_weight),
        "style_weight": float(perceptual.style_weight),
        "tv_weight": float(perceptual.tv_weight),
        "style_layers": {k: float(v) for k, v in perceptual.style_layers.items()},
        "content_layer": perceptual.content_layer,
        "recipe": getattr(args, "recipe", None),
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
        "device": run.device.type,
        "torch_version": str(torch.__version__),
        "trainer": "trainer.fast",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })


