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


def smooth_activations(features: torch.Tensor, temperature: float) -> torch.Tensor:
    """Softmax smoothing of a layer's activations (Wang, Li and Vasconcelos, CVPR 2021, "SWAG").

    Each image's (C, H, W) activations go through a softmax over all their elements; the logits
    are divided by `temperature` times the image's own feature standard deviation, and the result
    is scaled by the element count so it averages 1 whatever the image size (the Gram targets come
    from a painting at another size than the training crops).
    """
    b = features.shape[0]
    flat = features.reshape(b, -1).float()
    scale = flat.std(dim=1, keepdim=True).clamp_min(1e-6) * temperature
    smoothed = torch.softmax(flat / scale, dim=1) * flat.shape[1]
    return smoothed.reshape(features.shape)


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


def random_warp(batch: int, max_shift: float, max_rotate: float, size: tuple[int, int],
                generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
    """Random small affine warps (B, 2, 3) for `F.affine_grid`: a sub-pixel to few-pixel shift of up
    to `max_shift` px and a rotation of up to `max_rotate` degrees, the motion of a hand-held camera."""
    h, w = size
    u = torch.rand(batch, 3, generator=generator) * 2 - 1
    angle = torch.deg2rad(u[:, 0] * max_rotate)
    # affine_grid works in [-1, 1] coordinates: a shift of d px is 2d / size.
    tx, ty = u[:, 1] * max_shift * 2 / w, u[:, 2] * max_shift * 2 / h
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin * h / w, tx], 1), torch.stack([sin * w / h, cos, ty], 1)], 1)
    return theta.to(device)


def apply_warp(img: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """`img` resampled (bilinear, edges repeated) through the warps of `random_warp`."""
    grid = F.affine_grid(theta.to(img.dtype), list(img.shape), align_corners=False)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False)


def stability_loss(warped_output: torch.Tensor, output_of_warped: torch.Tensor, margin: int) -> torch.Tensor:
    """Compound regularisation (Wang et al., AAAI 2020): MSE between T(F(x)) and F(T(x) + noise).

    The `margin` px border is left out: there the warp repeats edge pixels the network never saw.
    """
    crop = (..., slice(margin, -margin or None), slice(margin, -margin or None))
    return F.mse_loss(warped_output[crop].float(), output_of_warped[crop].float())
