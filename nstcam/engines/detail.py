"""The photo's fine luminance detail added back to a stylized frame, inside the per-frame network.

MicroAST's decoder repaints edges with the painting's strokes; on busy paintings (The Starry
Night) the photo's structure drops to an edge correlation of 0.4. Adding a fraction of the photo's
high-frequency luma (the photo minus its Gaussian blur) to all three channels restores edges and
fine texture without moving colours: the band has zero mean and no chroma, so the painting's
palette and the strokes' coarse layout stay. Being part of the network, the torch and ONNX
Runtime paths apply it identically; it costs one separable blur of one channel per frame.

How much is added depends on the painting: half the band keeps enough of the photo under Monet's
or Munch's strokes, The Starry Night's swirls need about three times that, and more than needed
moves the colours toward the photo's. `calibrate_amount` chooses it once, when the style is made,
from the style's own outputs on a few built-in probe frames (no photos needed at runtime).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nstcam.engines.instant import DETAIL_AMOUNT  # a file's without a calibrated one, and the least one gets
from trainer.metrics import edge_correlation

LUMA = (0.299, 0.587, 0.114)  # Rec. 601, as the quality report's edge figure
DETAIL_MAX = 2.0  # beyond this the band sharpens the photo more than it keeps its structure
DETAIL_STEP = 0.125
# Mean unblurred edge correlation the calibrated amount reaches on the probe frames (the demo
# scene at 224x168, `nstcam.jobs.instant_style.probe_frames`); README "Instant styles" has the
# sweep it was chosen from, on the pack's paintings and the quality report's photos.
PROBE_STRUCTURE = 0.78
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

    def forward(self, x: torch.Tensor, amount: torch.Tensor | None = None) -> torch.Tensor:
        """`amount`: a (1,) tensor instead of `self.amount` (an input of the shared ONNX graph)."""
        y = (x * self.luma).sum(1, keepdim=True)
        r = self.taps.numel() // 2
        h, w = y.shape[-2:]
        if min(h, w) <= r:  # reflection needs the side longer than the pad: no band to take
            return torch.zeros_like(y)
        blur = F.conv2d(F.pad(y, (r, r, 0, 0), mode="reflect"), self.taps.view(1, 1, 1, -1))
        blur = F.conv2d(F.pad(blur, (0, 0, r, r), mode="reflect"), self.taps.view(1, 1, -1, 1))
        return (self.amount if amount is None else amount) * (y - blur)


@torch.inference_mode()
def calibrate_amount(plain: Callable[[torch.Tensor], torch.Tensor], probes: Sequence[torch.Tensor],
                     target: float = PROBE_STRUCTURE) -> float:
    """The least amount, from DETAIL_AMOUNT up in DETAIL_STEPs to DETAIL_MAX, at which the
    outputs of `plain` (a style's per-frame network without the band) plus the band keep `target`
    of the probe frames' structure (mean edge correlation, unblurred, as the quality report).
    `probes`: RGB [0, 1] (1, 3, H, W) frames. The band is linear, so each probe runs once."""
    band = LumaDetail(1.0, DETAIL_SIGMA)
    runs = [(plain(x).float(), band(x), x) for x in probes]

    def structure(amount: float) -> float:
        return sum(edge_correlation((y + amount * b).clamp(0, 1), x, blur_sigma=0.0) for y, b, x in runs) / len(runs)

    steps = 0
    while DETAIL_AMOUNT + steps * DETAIL_STEP < DETAIL_MAX and structure(DETAIL_AMOUNT + steps * DETAIL_STEP) < target:
        steps += 1
    return DETAIL_AMOUNT + steps * DETAIL_STEP
