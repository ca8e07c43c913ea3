"""The loss terms of neural style transfer, as plain functions of feature tensors."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix of (B, C, H, W) features, normalised by C*H*W as in Johnson et al.

    Computed in fp32 even under autocast: the products overflow half precision at large sizes.
    """
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w).float()
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(features.float(), target.float())


def style_loss(
    grams: dict[str, torch.Tensor],
    targets: dict[str, torch.Tensor],
    layer_weights: dict[str, float],
    normalize: bool = False,
) -> torch.Tensor:
    """Weighted sum over layers of the MSE between Gram matrices.

    With `normalize`, each layer's term is divided by its target Gram's energy (mean square), so
    layers whose raw Gram magnitudes differ by orders of magnitude contribute comparably.
    Targets of shape (C, C) or (1, C, C) broadcast over the batch.
    """
    total = None
    for name, weight in layer_weights.items():
        target = targets[name].float()
        if target.dim() == 2:
            target = target.unsqueeze(0)
        term = F.mse_loss(grams[name], target.expand_as(grams[name]))
        if normalize:
            term = term / target.pow(2).mean().clamp_min(1e-12)
        term = weight * term
        total = term if total is None else total + term
    if total is None:
        raise ValueError("style_loss needs at least one style layer")
    return total


def total_variation_loss(img: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels; discourages high-frequency noise."""
    dh = (img[:, :, 1:, :] - img[:, :, :-1, :]).abs().mean()
    dw = (img[:, :, :, 1:] - img[:, :, :, :-1]).abs().mean()
    return dh + dw
