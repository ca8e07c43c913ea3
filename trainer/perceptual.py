"""Perceptual loss: content, Gram-style and total-variation terms measured through a frozen LossNet."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from trainer.losses import content_loss, gram_matrix, smooth_activations, style_loss, total_variation_loss
from trainer.lossnets.base import LossNet


@dataclass
class LossTerms:
    """Weighted terms (already multiplied by their weights) and their sum."""

    total: torch.Tensor
    content: torch.Tensor
    style: torch.Tensor
    tv: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        return {k: float(getattr(self, k).detach()) for k in ("total", "content", "style", "tv")}


class PerceptualLoss(nn.Module):
    """Holds a loss net, the style's Gram targets and the term weights.

    The style targets are plain tensors so they can be computed from a painting once and stored in
    a style file; snapshot refinement then needs no painting on disk.
    """

    def __init__(
        self,
        net: LossNet,
        content_weight: float,
        style_weight: float,
        tv_weight: float = 0.0,
        style_layers: dict[str, float] | None = None,
        content_layer: str | None = None,
        smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.net = net
        self.smoothing = smoothing  # softmax temperature of the style features' smoothing; 0: off
        self.content_weight = content_weight
        self.style_weight = style_weight
        self.tv_weight = tv_weight
        self.style_layers = dict(style_layers or net.style_weights)
        self.content_layer = content_layer or net.content_layer
        unknown = (set(self.style_layers) | {self.content_layer}) - set(net.tap_index)
        if unknown:
            raise ValueError(f"{net.name}: unknown layer(s) {sorted(unknown)}")
        self.style_targets: dict[str, torch.Tensor] = {}

    @property
    def taps(self) -> set[str]:
        return set(self.style_layers) | {self.content_layer}

    @torch.no_grad()
    def compute_style_targets(self, style_image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Gram matrices (C, C) of a style image at the style layers."""
        feats = self.net(style_image, set(self.style_layers))
        return {name: self._gram(feats[name])[0] for name in self.style_layers}

    def _gram(self, features: torch.Tensor) -> torch.Tensor:
        if self.smoothing:
            features = smooth_activations(features, self.smoothing)
        return gram_matrix(features)

    @torch.no_grad()
    def style_distance(self, images: torch.Tensor) -> float:
        """Unweighted style loss of `images` themselves against the targets: how far photos are
        from the painting in this net's Gram statistics (the basis of the automatic style weight)."""
        feats = self.net(images, set(self.style_layers))
        grams = {name: self._gram(feats[name]) for name in self.style_layers}
        return float(style_loss(grams, self.style_targets, self.style_layers, normalize=self.net.normalize_style))

    def set_style_image(self, style_image: torch.Tensor) -> None:
        self.set_style_targets(self.compute_style_targets(style_image))

    def set_style_targets(self, targets: dict[str, torch.Tensor]) -> None:
        missing = set(self.style_layers) - set(targets)
        if missing:
            raise ValueError(
                f"style targets lack layer(s) {sorted(missing)} needed by {self.net.name}"
            )
        device = self.net.mean.device
        self.style_targets = {k: targets[k].to(device, torch.float32) for k in self.style_layers}

    @torch.no_grad()
    def content_features(self, content_image: torch.Tensor) -> torch.Tensor:
        return self.net(content_image, {self.content_layer})[self.content_layer]

    def forward(self, output: torch.Tensor, content_target: torch.Tensor) -> LossTerms:
        """Loss of `output` against precomputed content features (see `content_features`)."""
        if not self.style_targets:
            raise RuntimeError("PerceptualLoss has no style targets; call set_style_image first")
        feats = self.net(output, self.taps)
        grams = {name: self._gram(feats[name]) for name in self.style_layers}
        c = self.content_weight * content_loss(feats[self.content_layer], content_target)
        s = self.style_weight * style_loss(
            grams, self.style_targets, self.style_layers, normalize=self.net.normalize_style
        )
        tv = self.tv_weight * total_variation_loss(output.float()) if self.tv_weight else c.new_zeros(())
        return LossTerms(total=c + s + tv, content=c, style=s, tv=tv)
