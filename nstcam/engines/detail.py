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

from nstcam.engines.calibration import DETAIL_SIGMA, LUMA, PROBE_STRUCTURE, gaussian_taps, least_amount
from trainer.metrics import edge_correlation


class LumaDetail(nn.Module):
    """RGB [0, 1] (N, 3, H, W) -> `amount` x its luma minus its Gaussian blur, (N, 1, H, W)."""

    def __init__(self, amount: float, sigma: float) -> None:
        super().__init__()
        self.amount = amount
        self.register_buffer("luma", torch.tensor(LUMA).view(1, 3, 1, 1))
        self.register_buffer("taps", torch.from_numpy(gaussian_taps(sigma)).float())

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
    """`least_amount` at which the outputs of `plain` (a style's per-frame network without the
    band) plus the band keep `target` of the probe frames' structure (mean edge correlation,
    unblurred, as the quality report). `probes`: RGB [0, 1] (1, 3, H, W) frames. The band is
    linear, so each probe runs once. (Without torch: nstcam.engines.calibration.)"""
    band = LumaDetail(1.0, DETAIL_SIGMA)
    runs = [(plain(x).float(), band(x), x) for x in probes]

    def structure(amount: float) -> float:
        return sum(edge_correlation((y + amount * b).clamp(0, 1), x, blur_sigma=0.0) for y, b, x in runs) / len(runs)

    return least_amount(structure, target)
