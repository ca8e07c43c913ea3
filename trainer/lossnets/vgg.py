"""VGG19 (ImageNet, torchvision) as a loss network: the classic choice of Gatys and Johnson.

Its weights (548 MB) are not shipped with any package, so they come from a file the user names
or from torch's hub cache; nothing is downloaded unless the caller explicitly allows it.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn
from torchvision.models import VGG19_Weights

from .base import LossNet
from .errors import LossNetUnavailable
from .weights import load_checked, read_state_dict

logger = logging.getLogger(__name__)

WEIGHTS = VGG19_Weights.IMAGENET1K_V1

# torchvision's vgg19().features, block by block: (channels, 3x3 convolutions, each followed by
# a ReLU), then a 2x2 max-pool.
_BLOCKS = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))


def _features() -> nn.Sequential:
    """The layers of torchvision's vgg19().features at the same indices, so with the same
    state-dict keys, but with out-of-place ReLUs and without building its 400 MB classifier."""
    layers: list[nn.Module] = []
    in_ch = 3
    for channels, n_convs in _BLOCKS:
        for _ in range(n_convs):
            layers += [nn.Conv2d(in_ch, channels, 3, padding=1), nn.ReLU()]
            in_ch = channels
        layers.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers)


def _tap_names() -> dict[str, int]:
    """convB_I -> index of that convolution in `features`, reluB_I -> index of its ReLU."""
    taps: dict[str, int] = {}
    index = 0
    for block, (_channels, n_convs) in enumerate(_BLOCKS, start=1):
        for i in range(1, n_convs + 1):
            taps[f"conv{block}_{i}"] = index
            taps[f"relu{block}_{i}"] = index + 1
            index += 2
        index += 1  # the block's max-pool
    return taps


TAPS: dict[str, int] = _tap_names()

# Gatys et al.'s layers: the first ReLU of every block for style, relu4_2 for content.
DEFAULT_STYLE_WEIGHTS: dict[str, float] = {
    "relu1_1": 1.0,
    "relu2_1": 1.0,
    "relu3_1": 1.0,
    "relu4_1": 1.0,
    "relu5_1": 1.0,
}
DEFAULT_CONTENT_LAYER = "relu4_2"


class VGG19LossNet(LossNet):
    """torchvision's VGG19 `features`, tapped at conv (pre-activation) or ReLU outputs.

    Tap `convB_I` is the I-th convolution of block B (B = 1..5), `reluB_I` its ReLU; block B runs
    at stride 2**(B-1) with 64, 128, 256, 512, 512 channels. torchvision's ReLUs work in place,
    which would silently turn an already-returned conv tap into its ReLU output; here they are
    out-of-place so each name means what it says. `layers` is all of `features`, so its state
    dict is torchvision's `features.*` with that prefix removed. Starts with random weights: use
    `load_vgg19` for the ImageNet ones.
    """

    name = "vgg19"
    normalize_style = False

    def __init__(
        self,
        style_weights: Mapping[str, float] | None = None,
        content_layer: str | None = None,
    ) -> None:
        super().__init__(
            _features(),
            TAPS,
            DEFAULT_STYLE_WEIGHTS if style_weights is None else style_weights,
            content_layer or DEFAULT_CONTENT_LAYER,
        )


def vgg19_cache_path() -> Path:
    """Where torchvision keeps (or would keep) the downloaded ImageNet VGG19 weights."""
    filename = WEIGHTS.url.rsplit("/", 1)[-1]
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def vgg19_weights_on_disk() -> Path | None:
    """The hub-cache file of the ImageNet VGG19 weights, or None if it has not been downloaded."""
    path = vgg19_cache_path()
    return path if path.is_file() else None


def features_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The `features` part of a VGG19 state dict, keyed like `features` itself ("0.weight").

    Accepts a whole torchvision vgg19 state dict (classifier keys are dropped) or one that is
    already features-only.
    """
    prefix = "features."
    if any(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return dict(state)


def load_vgg19(
    weights_path: str | Path | None = None,
    allow_download: bool = False,
    *,
    style_weights: Mapping[str, float] | None = None,
    content_layer: str | None = None,
) -> VGG19LossNet:
    """A VGG19LossNet with ImageNet weights from `weights_path`, else from torch's hub cache.

    Downloading into the hub cache happens only with `allow_download`; otherwise missing weights
    raise LossNetUnavailable explaining the remedies. Unreadable or mismatching files raise
    LossNetUnavailable naming the file and the problem.
    """
    net = VGG19LossNet(style_weights, content_layer)
    if weights_path is not None:
        source = str(weights_path)
        state = read_state_dict(weights_path, "VGG19 weights")
    elif (cached := vgg19_weights_on_disk()) is not None:
        source = str(cached)
        state = read_state_dict(cached, "VGG19 weights (torch hub cache)")
    elif allow_download:
        source = WEIGHTS.url
        logger.info("downloading %s into %s", WEIGHTS, vgg19_cache_path().parent)
        try:
            state = WEIGHTS.get_state_dict(progress=True, weights_only=True)
        except (OSError, RuntimeError) as exc:  # URLError is an OSError; hash errors are Runtime
            raise LossNetUnavailable(
                f"could not download {WEIGHTS} from {WEIGHTS.url} ({exc}). {_remedies()}"
            ) from None
    else:
        raise LossNetUnavailable(
            f"the ImageNet VGG19 weights are not on disk (expected {vgg19_cache_path()}). "
            + _remedies()
        )
    load_checked(net.layers, features_state(state), source)
    logger.info("loaded VGG19 weights from %s", source)
    return net


def _remedies() -> str:
    return (
        "Either pass --vgg-weights PATH to a VGG19 state-dict file (torchvision's vgg19 "
        "state_dict(), whole or features only), or run once with network access so torchvision "
        f"can download {WEIGHTS} into the torch hub cache, or use --loss-net efficientnet-lite0, "
        "which works offline."
    )
