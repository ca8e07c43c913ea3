"""Johnson et al. (2016) image transformation network, with knobs for a lighter CPU variant."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class TransformerConfig:
    """Architecture of a TransformerNet; stored in every style file so it can be rebuilt.

    `width` is the channel count of the first layer (Johnson: 32; the encoder doubles it twice).
    `outer_kernel` is the size of the first and last convolutions (Johnson: 9), the most expensive
    layers at full resolution. `separable` swaps the residual blocks' 3x3 convolutions for
    depthwise + pointwise pairs, which cost roughly 1/8 as much at the widths used here.
    `bounded_output` squashes the output with a scaled tanh (as Johnson did): an unbounded output
    lets training buy Gram energy with a few saturated blobs, which then show as bright spots.
    `blur_downsample` low-passes with a 3x3 binomial filter before each stride-2 convolution
    (Zhang, ICML 2019, "Making Convolutional Networks Shift-Invariant Again") and `upsample`
    chooses nearest or bilinear upsampling in the decoder: with both off, a sub-stride shift of
    the input changes the painted texture (aliasing), which shows as shimmer in video.
    Files written before these fields existed load with both off, as they were trained.
    """

    width: int = 32
    res_blocks: int = 5
    outer_kernel: int = 9
    separable: bool = False
    bounded_output: bool = True
    blur_downsample: bool = False
    upsample: str = "nearest"

    def __post_init__(self) -> None:
        if self.upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {self.upsample!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TransformerConfig":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        known.setdefault("bounded_output", False)  # files from before the field had a linear output
        return cls(**known)


UPSAMPLE_MODES = ("nearest", "bilinear")


class ConvLayer(nn.Sequential):
    """Reflection padding keeps borders free of the dark frame zero padding paints."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.ReflectionPad2d(kernel // 2),
            nn.Conv2d(cin, cout, kernel, stride, groups=groups),
        )


def _norm(channels: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(channels, affine=True)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, separable: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *self._conv(channels, separable), _norm(channels), nn.ReLU(inplace=True),
            *self._conv(channels, separable), _norm(channels),
        )

    @staticmethod
    def _conv(channels: int, separable: bool) -> list[nn.Module]:
        if not separable:
            return [ConvLayer(channels, channels, 3)]
        return [ConvLayer(channels, channels, 3, groups=channels), nn.Conv2d(channels, channels, 1)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class BlurPool(nn.Module):
    """Fixed 3x3 binomial low-pass per channel (reflection padded); no weights in the state dict."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        kernel = (k[:, None] * k[None, :]) / 16.0
        self.register_buffer("kernel", kernel.expand(channels, 1, 3, 3).contiguous(), persistent=False)
        self.pad = nn.ReflectionPad2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self.pad(x), self.kernel.to(x.dtype), groups=x.shape[1])


def _down(cin: int, cout: int, blur: bool) -> list[nn.Module]:
    conv = ConvLayer(cin, cout, 3, stride=2)
    return [BlurPool(cin), conv] if blur else [conv]


class UpsampleConv(nn.Sequential):
    """Upsampling then convolution: avoids the checkerboard of transposed convolutions."""

    def __init__(self, cin: int, cout: int, kernel: int, mode: str = "nearest") -> None:
        extra = {"align_corners": False} if mode == "bilinear" else {}
        super().__init__(nn.Upsample(scale_factor=2, mode=mode, **extra), ConvLayer(cin, cout, kernel))


class TransformerNet(nn.Module):
    """RGB [0, 1] in, RGB out at exactly the input's height and width.

    The output spans [-0.1, 1.1] with `bounded_output` (a little headroom so pure black and white
    stay reachable without saturating tanh), unbounded otherwise; callers clamp for display.
    """

    def __init__(self, config: TransformerConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or TransformerConfig()
        w, k = cfg.width, cfg.outer_kernel
        self.encoder = nn.Sequential(
            ConvLayer(3, w, k), _norm(w), nn.ReLU(inplace=True),
            *_down(w, 2 * w, cfg.blur_downsample), _norm(2 * w), nn.ReLU(inplace=True),
            *_down(2 * w, 4 * w, cfg.blur_downsample), _norm(4 * w), nn.ReLU(inplace=True),
        )
        self.residuals = nn.Sequential(*(ResidualBlock(4 * w, cfg.separable) for _ in range(cfg.res_blocks)))
        self.decoder = nn.Sequential(
            UpsampleConv(4 * w, 2 * w, 3, cfg.upsample), _norm(2 * w), nn.ReLU(inplace=True),
            UpsampleConv(2 * w, w, 3, cfg.upsample), _norm(w), nn.ReLU(inplace=True),
            ConvLayer(w, 3, k),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # Two stride-2 stages: pad to a multiple of 4 so the decoder lands back on the input size,
        # and to at least 8 so the quarter-resolution reflection padding has pixels to reflect.
        ph, pw = max(8, h + (-h) % 4) - h, max(8, w + (-w) % 4) - w
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        y = self.decoder(self.residuals(self.encoder(x)))
        if self.config.bounded_output:
            y = 0.5 + 0.6 * torch.tanh(y)
        return y[..., :h, :w] if (ph or pw) else y
