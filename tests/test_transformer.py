"""TransformerNet shapes, and the style file round trip and its errors."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainer.stylefile import StyleFileError, load_style, save_style
from trainer.transformer import TransformerConfig, TransformerNet

TINY = TransformerConfig(width=4, res_blocks=1, outer_kernel=3)


@pytest.mark.parametrize("config", [TINY, TransformerConfig(width=4, res_blocks=2, separable=True)])
@pytest.mark.parametrize("size", [(17, 23), (32, 32), (33, 30), (1, 5)])
def test_output_has_input_size(config: TransformerConfig, size: tuple[int, int]) -> None:
    net = TransformerNet(config).eval()
    with torch.no_grad():
        y = net(torch.rand(2, 3, *size))
    assert y.shape == (2, 3, *size)


def test_default_is_johnson_architecture() -> None:
    net = TransformerNet()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs[0].kernel_size == (9, 9) and convs[0].out_channels == 32
    assert len(net.residuals) == 5
    assert any(isinstance(m, torch.nn.InstanceNorm2d) for m in net.modules())
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in net.modules())


@pytest.fixture
def style_file(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    net = TransformerNet(TINY)
    path = tmp_path / "tiny.pt"
    save_style(path, net, {"name": "tiny", "artist": "Nobody"}, {"efficientnet-lite0": {"stem": torch.eye(4)}})
    return path


def test_style_file_round_trip(style_file: Path) -> None:
    model = load_style(style_file)
    assert model.name == "tiny" and model.meta["artist"] == "Nobody"
    assert model.config == TINY
    assert torch.equal(model.style_targets["efficientnet-lite0"]["stem"], torch.eye(4))
    x = torch.rand(1, 3, 20, 20)
    torch.manual_seed(0)
    reference = TransformerNet(TINY).eval()
    with torch.no_grad():
        # fp16 storage: same output within half-precision rounding of the weights
        assert torch.allclose(model.build()(x), reference(x), atol=1e-2)
    assert torch.load(style_file, weights_only=True)["format"] == "nstcam-style"


def test_truncated_style_file_is_named(style_file: Path) -> None:
    data = style_file.read_bytes()
    style_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(StyleFileError, match="tiny.pt.*corrupt or truncated"):
        load_style(style_file)


def test_garbage_and_foreign_files_are_named(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a torch file at all" * 10)
    with pytest.raises(StyleFileError, match="garbage.pt"):
        load_style(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(StyleFileError, match="foreign.pt: not an nstcam style file"):
        load_style(foreign)
    with pytest.raises(StyleFileError, match="no such style file"):
        load_style(tmp_path / "missing.pt")


def test_weights_not_matching_architecture(style_file: Path) -> None:
    payload = torch.load(style_file, weights_only=True)
    payload["config"]["width"] = 8
    torch.save(payload, style_file)
    with pytest.raises(StyleFileError, match="do not match"):
        load_style(style_file)


def test_bounded_output_stays_near_unit_range() -> None:
    net = TransformerNet(TINY)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(50)  # drive the pre-activation far out of range
        y = net(torch.rand(1, 3, 24, 24))
    assert y.min() >= -0.1 - 1e-6 and y.max() <= 1.1 + 1e-6
    assert y.max() - y.min() > 0.5


def test_config_from_files_without_the_output_field_is_linear() -> None:
    legacy = {"width": 4, "res_blocks": 1, "outer_kernel": 3, "separable": False}
    assert TransformerConfig.from_dict(legacy).bounded_output is False
    assert TransformerConfig.from_dict(TINY.to_dict()) == TINY


def test_style_file_is_readable_by_others(style_file: Path) -> None:
    assert style_file.stat().st_mode & 0o044 == 0o044


AA = TransformerConfig(width=4, res_blocks=1, outer_kernel=3, blur_downsample=True, upsample="bilinear")


@pytest.mark.parametrize("size", [(17, 23), (1, 5)])
def test_anti_aliased_net_keeps_input_size(size: tuple[int, int]) -> None:
    with torch.no_grad():
        assert TransformerNet(AA).eval()(torch.rand(1, 3, *size)).shape == (1, 3, *size)


def _shift_error(config: TransformerConfig) -> float:
    """How much a 1 px shift of the input changes the output beyond shifting it (interior, relative)."""
    torch.manual_seed(0)
    net = TransformerNet(config).eval()
    x = torch.nn.functional.interpolate(torch.rand(1, 3, 20, 20), size=(69, 69), mode="bicubic").clamp(0, 1)
    with torch.no_grad():
        a, b = net(x[..., :68, :68]), net(x[..., 1:, 1:])
    return float((a[..., 9:-7, 9:-7] - b[..., 8:-8, 8:-8]).abs().mean() / a.std())


def test_blur_and_bilinear_upsampling_reduce_sub_stride_shift_aliasing() -> None:
    plain = TransformerConfig(width=16, res_blocks=2, outer_kernel=5)
    smooth = TransformerConfig(width=16, res_blocks=2, outer_kernel=5, blur_downsample=True, upsample="bilinear")
    assert _shift_error(smooth) < 0.8 * _shift_error(plain)


def test_anti_alias_options_survive_the_style_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = TransformerNet(AA)
    save_style(tmp_path / "aa.pt", net, {"name": "aa"}, {})
    model = load_style(tmp_path / "aa.pt")
    assert model.config == AA
    x = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(model.build()(x), net.eval()(x), atol=2e-2, rtol=0)  # fp16 weights


def test_files_from_before_the_anti_alias_options_load_without_them() -> None:
    config = TransformerConfig.from_dict({"width": 4, "res_blocks": 1, "outer_kernel": 3, "bounded_output": True})
    assert config.blur_downsample is False and config.upsample == "nearest"


def test_unknown_upsampling_mode_in_a_file_is_named(style_file: Path) -> None:
    payload = torch.load(style_file, weights_only=True)
    payload["config"]["upsample"] = "cubic-spline"
    torch.save(payload, style_file)
    with pytest.raises(StyleFileError, match="upsample"):
        load_style(style_file)
