"""A frozen feature extractor that exposes named intermediate activations ("taps")."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class LossNet(nn.Module):
    """Runs `layers` in order and returns the outputs of the tapped layers.

    Subclasses fill in `layers` (an nn.Sequential), `tap_index` (tap name -> index into `layers`
    whose output is the tap), the default `style_weights` / `content_layer`, and whether style
    terms should be normalised per layer. Input is RGB in [0, 1]; the ImageNet normalisation the
    weights were trained with happens here so callers never repeat it.
    """

    name: str = "lossnet"
    normalize_style: bool = False

    def __init__(
        self,
        layers: nn.Sequential,
        tap_index: Mapping[str, int],
        style_weights: Mapping[str, float],
        content_layer: str,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        unknown = (set(style_weights) | {content_layer}) - set(tap_index)
        if unknown:
            raise ValueError(
                f"{self.name}: unknown layer(s) {sorted(unknown)}; available: {sorted(tap_index)}"
            )
        self.layers = layers
        self.tap_index = dict(tap_index)
        self.style_weights = dict(style_weights)
        self.content_layer = content_layer
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "LossNet":
        # Frozen: batch-norm statistics and dropout must never switch to training behaviour.
        return super().train(False)

    def forward(self, x: torch.Tensor, taps: set[str] | None = None) -> dict[str, torch.Tensor]:
        """Features at `taps` (default: the style layers and the content layer)."""
        wanted = set(taps) if taps is not None else set(self.style_weights) | {self.content_layer}
        by_index: dict[int, list[str]] = {}
        for name in wanted:
            by_index.setdefault(self.tap_index[name], []).append(name)
        last = max(by_index)
        out: dict[str, torch.Tensor] = {}
        h = (x - self.mean) / self.std
        for i, layer in enumerate(self.layers):
            h = layer(h)
            for name in by_index.get(i, ()):
                out[name] = h
            if i == last:
                break
        return out
