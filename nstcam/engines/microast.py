"""MicroAST (Wang et al., AAAI 2023, "MicroAST: Towards Super-Fast Ultra-Resolution Arbitrary
Style Transfer"): arbitrary style transfer without a VGG at inference, ported from the paper and
EndyWon/MicroAST (MIT licence, weights in `weights/`, notice in `weights/LICENSE-MicroAST`).

Two micro encoders (content, style) of the same shape, a modulator and a decoder, 0.47 M
parameters. The style encoder and the modulator turn a painting into a `StyleCode`: the mean and
spread of its features at two depths (for AdaIN) and, per depth, a scale and a gate that modulate
the decoder's residual filters. That code is computed once per painting; a frame then costs the
content encoder and the decoder only (`InstantNet`), like a trained style's TransformerNet.

Parameter names follow the published checkpoints, so their state dicts load as they are.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nstcam.engines.detail import DETAIL_SIGMA, LumaDetail
from nstcam.engines.instant import StyleCode, weights_dir

EPS = 1e-5  # added to the feature variance, as in training
WIDTH = 64  # channels of the encoders' output and the decoder's input
SIDE_MULTIPLE = 4  # two stride-2 stages
PARTS = ("content_encoder", "style_encoder", "modulator", "decoder")
CODE_ROWS = ("mean1", "std1", "mean2", "std2", "scale1", "gate1", "scale2", "gate2")


class ReflectConv(nn.Module):
    """A convolution over a reflection-padded input (no dark borders)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.pad = kernel // 2
        self.conv_layer = nn.Conv2d(cin, cout, kernel, stride, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.pad
        return self.conv_layer(F.pad(x, (p, p, p, p), mode="reflect") if p else x)


class Residual(nn.Module):
    """x + conv(relu(conv(x))); with a style's `scale` and `gate` (per channel), each convolution's
    output is scaled and its input added back gated: the paper's filter modulation."""

    def __init__(self, channels: int = WIDTH) -> None:
        super().__init__()
        self.conv1 = ReflectConv(channels, channels, 3)
        self.conv2 = ReflectConv(channels, channels, 3)

    def forward(self, x: torch.Tensor, scale: torch.Tensor | None = None,
                gate: torch.Tensor | None = None) -> torch.Tensor:
        if scale is None or gate is None:
            return x + self.conv2(F.relu(self.conv1(x)))
        h = F.relu(scale * self.conv1(x) + gate * x)
        return x + scale * self.conv2(h) + gate * h


def _separable_down(cin: int, cout: int) -> list[nn.Module]:
    """Depthwise-grouped stride-2 3x3, then a 1x1 mix."""
    return [ReflectConv(cin, cout, 3, 2, groups=cin), nn.ReLU(), ReflectConv(cout, cout, 1), nn.ReLU()]


def _separable_up(cin: int, cout: int) -> list[nn.Module]:
    """x2 bilinear upsampling, grouped 3x3, then a 1x1 mix."""
    return [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            ReflectConv(cin, cout, 3, groups=cout), nn.ReLU(), ReflectConv(cout, cout, 1), nn.ReLU()]


class Encoder(nn.Module):
    """RGB -> features at 1/4 resolution, at two depths (`enc1`, then one more residual block)."""

    def __init__(self) -> None:
        super().__init__()
        self.enc1 = nn.Sequential(ReflectConv(3, 16, 9), nn.ReLU(), *_separable_down(16, 32),
                                  *_separable_down(32, WIDTH), Residual())
        self.enc2 = nn.Sequential(Residual())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f1 = self.enc1(x)
        return f1, self.enc2(f1)


class Modulator(nn.Module):
    """Per-channel filter scale and gate from each depth's style features (grouped 3x3, mean)."""

    def __init__(self) -> None:
        super().__init__()
        for name in ("weight1", "bias1", "weight2", "bias2"):
            setattr(self, name, nn.Sequential(ReflectConv(WIDTH, WIDTH, 3, groups=WIDTH)))

    def forward(self, f1: torch.Tensor, f2: torch.Tensor) -> list[torch.Tensor]:
        return [self.weight1(f1).mean((2, 3)), self.bias1(f1).mean((2, 3)),
                self.weight2(f2).mean((2, 3)), self.bias2(f2).mean((2, 3))]


class Decoder(nn.Module):
    """Features -> RGB, modulated by a style code at both depths."""

    def __init__(self) -> None:
        super().__init__()
        self.dec1 = Residual()
        self.dec2 = Residual()
        self.dec3 = nn.Sequential(*_separable_up(WIDTH, 32), *_separable_up(32, 16), ReflectConv(16, 3, 9))

    def forward(self, f2: torch.Tensor, code: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
        mean1, std1, mean2, std2, scale1, gate1, scale2, gate2 = (row.view(1, -1, 1, 1) for row in code)
        x = _mix(adain(f2, mean2, std2), f2, alpha)
        x = self.dec1(x, scale2, gate2)
        x = _mix(adain(x, mean1, std1), x, alpha)
        x = self.dec2(x, scale1, gate1)
        return self.dec3(x)


def _mix(styled: torch.Tensor, plain: torch.Tensor, alpha: float) -> torch.Tensor:
    return styled if alpha == 1.0 else alpha * styled + (1.0 - alpha) * plain


def mean_std(feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation (unbiased variance + EPS), shaped (N, C, 1, 1)."""
    var, mean = torch.var_mean(feat, dim=(2, 3), keepdim=True, unbiased=True)
    return mean, (var + EPS).sqrt()


def adain(feat: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """`feat` normalised per channel, then given the style's mean and spread (Huang & Belongie)."""
    own_mean, own_std = mean_std(feat)
    return (feat - own_mean) / own_std * std + mean


@functools.lru_cache(maxsize=1)
def published_weights() -> dict[str, dict[str, torch.Tensor]]:
    """The four published state dicts (MicroAST, iteration 160000), loaded once."""
    folder = weights_dir()
    return {part: torch.load(folder / f"{part}_iter_160000.pth.tar", map_location="cpu", weights_only=True)
            for part in PARTS}


class StyleEncoder(nn.Module):
    """A painting (RGB in [0, 1], (1, 3, H, W)) -> its style code tensor (8, 64)."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = Encoder()
        self.modulator = Modulator()

    def forward(self, picture: torch.Tensor) -> torch.Tensor:
        f1, f2 = self.encoder(picture)
        m1, s1 = mean_std(f1)
        m2, s2 = mean_std(f2)
        stats = [t.flatten(1) for t in (m1, s1, m2, s2)]
        return torch.cat(stats + self.modulator(f1, f2), 0)


class InstantNet(nn.Module):
    """The per-frame network of one painting: RGB [0, 1] (1, 3, H, W) -> stylized RGB, same size.

    The style code is a buffer, so the net moves to a device like a trained style's network. It
    computes in fp32 and returns the input's dtype: in bf16 MicroAST's AdaIN statistics and
    filter modulation lose too much (about 30 dB PSNR to fp32, against 52 dB for a trained net).
    `alpha` < 1 interpolates the AdaIN features toward the content's own (the paper's control).
    `detail` (not the paper's): the frame's fine luma added back to the output (`LumaDetail`).
    """

    def __init__(self, code: torch.Tensor, alpha: float = 1.0, detail: LumaDetail | None = None) -> None:
        super().__init__()
        self.content_encoder = Encoder()
        self.decoder = Decoder()
        self.register_buffer("code", code.detach().clone().float())
        self.alpha = alpha
        self.detail = detail

    def forward(self, x: torch.Tensor, code: torch.Tensor | None = None,
                detail: torch.Tensor | None = None) -> torch.Tensor:
        """`code`, `detail`: another style's code and fine-luma amount instead of the buffer and
        `self.detail`'s (the ONNX graph that takes them as inputs)."""
        dtype, x = x.dtype, x.float()
        h, w = x.shape[-2:]
        ph, pw = (-h) % SIDE_MULTIPLE, (-w) % SIDE_MULTIPLE
        if ph or pw:  # the two stride-2 stages need sides divisible by 4; edge-pad and crop
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        _, f2 = self.content_encoder(x)
        y = self.decoder(f2, self.code if code is None else code, self.alpha)
        if self.detail is not None:  # on the padded frame, as ONNX Runtime's engine pads before the graph
            y = y + self.detail(x, detail)
        y = y[..., :h, :w] if ph or pw else y
        return y.to(dtype)


def style_encoder(device: torch.device | str = "cpu") -> StyleEncoder:
    weights = published_weights()
    net = StyleEncoder()
    net.encoder.load_state_dict(weights["style_encoder"])
    net.modulator.load_state_dict(weights["modulator"])
    return net.to(device).eval()


def instant_net(code: StyleCode, device: torch.device | str = "cpu", alpha: float = 1.0,
                detail: float = 0.0) -> InstantNet:
    """The published model for `code`; `detail` > 0 adds that fraction of the frame's fine luma."""
    weights = published_weights()
    restore = LumaDetail(detail, DETAIL_SIGMA) if detail > 0 else None
    net = InstantNet(torch.from_numpy(code.rows), alpha, restore)
    net.content_encoder.load_state_dict(weights["content_encoder"])
    net.decoder.load_state_dict(weights["decoder"])
    return net.to(device).eval()


@torch.inference_mode()
def encode_style(picture_rgb: np.ndarray) -> StyleCode:
    """An RGB uint8 (H, W, 3) painting -> its style code (fp32, CPU)."""
    x = torch.from_numpy(np.array(picture_rgb, np.uint8)).permute(2, 0, 1)[None].float().div_(255.0)
    return StyleCode(style_encoder()(x).numpy().astype(np.float32))
