"""The photo's fine luminance detail added back to a stylized frame, inside the per-frame network.

MicroAST's decoder repaints edges with the painting's strokes; on busy paintings (The Starry
Night) the photo's structure drops to an edge correlation of 0.4. Adding a fraction of the photo's
high-frequency luma (the photo minus its Gaussian blur) to all three channels restores edges and
fine texture without moving colours: the band has zero mean and no chroma, so the painting's
palette and the strokes' coarse layout stay. Being part of the network, the torch and ONNX
Runtime paths apply it identically; it costs one separable blur of one channel per frame.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LUMA = (0.299, 0.587, 0.114)  # Rec. 601, as the quality report's edge figure
DETAIL_AMOUNT = 0.5  # fraction of the band added: see README "Instant styles" for the sweep
DETAIL_SIGMA = 1.5  # px at the processing size: the band holds edges, not shading


def gaussian_taps(sigma: float) -> torch.Tensor:
    """A normalised 1-D Gaussian, radius 3 sigma (at least 1)."""
    radius = max(1, round(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    taps = torch.exp(-x * x / (2 * sigma * sigma))
    return taps / taps.sum()


class LumaDetail(nn.Module):
    """RGB [0, 1] (N, 3, H, W) -> `amount` x its luma minus its Gaussian blur, (N, 1, H, W)."""

    def __init__(self, amount: float, sigma: float) -> None:
        super().__init__()
        self.amount = amount
        self.register_buffer("luma", torch.tensor(LUMA).view(1, 3, 1, 1))
        self.register_buffer("taps", gaussian_taps(sigma))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = (x * self.luma).sum(1, keepdim=True)
        r = self.taps.numel() // 2
        h, w = y.shape[-2:]
        if min(h, w) <= r:  # reflection needs the side longer than the pad: no band to take
            return torch.zeros_like(y)
        blur = F.conv2d(F.pad(y, (r, r, 0, 0), mode="reflect"), self.taps.view(1, 1, 1, -1))
        blur = F.conv2d(F.pad(blur, (0, 0, r, r), mode="reflect"), self.taps.view(1, 1, -1, 1))
        return self.amount * (y - blur)
