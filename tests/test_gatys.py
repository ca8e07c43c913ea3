"""Gatys optimisation (trainer.gatys): refine() and its command line.

Most tests use a tiny random two-conv LossNet so they run in milliseconds; one refine test and
one CLI run use the real EfficientNet-Lite0 at 32-64 px.
"""
from __future__ import annotations

import io

import pytest
import torch
from PIL import Image
from torch import nn

from trainer import gatys
from trainer.gatys import GatysResult, build_perceptual_loss, refine
from trainer.images import tensor_to_pil
from trainer.lossnets.base import LossNet
from trainer.perceptual import PerceptualLoss


def make_image(h: int, w: int, seed: int) -> torch.Tensor:
    """A smooth colour gradient with a bright square: something with edges to keep."""
    g = torch.Generator().manual_seed(seed)
    ys = torch.linspace(0, 1, h).view(1, 1, h, 1)
    xs = torch.linspace(0, 1, w).view(1, 1, 1, w)
    img = torch.cat([ys.expand(1, 1, h, w), xs.expand(1, 1, h, w), (ys * xs).expand(1, 1, h, w)], 1)
    img = img * 0.6 + 0.2 + 0.05 * torch.rand(1, 3, h, w, generator=g)
    img[:, :, h // 4 : h // 2, w // 4 : w // 2] = 0.9
    return img.clamp(0, 1)


def make_style(h: int, w: int, seed: int) -> torch.Tensor:
    """Coloured diagonal stripes plus noise: a texture unlike the content."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    stripes = ((yy + xx) // 3 % 2).float()
    img = torch.stack([stripes, 1 - stripes, 0.5 * stripes]).unsqueeze(0)
    return (0.8 * img + 0.2 * torch.rand(1, 3, h, w, generator=g)).clamp(0, 1)


def tiny_loss(style: torch.Tensor | None = None) -> PerceptualLoss:
    torch.manual_seed(0)
    layers = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU()
    )
    net = LossNet(layers, {"relu1": 1, "relu2": 3}, {"relu1": 1.0, "relu2": 1.0}, "relu2")
    net.normalize_style = True
    loss = PerceptualLoss(net, content_weight=1.0, style_weight=1.0, tv_weight=0.01)
    if style is not None:
        loss.set_style_image(style)
    return loss


@pytest.fixture(scope="module")
def content() -> torch.Tensor:
    return make_image(48, 48, seed=1)


@pytest.fixture(scope="module")
def style() -> torch.Tensor:
    return make_style(48, 48, seed=2)


@pytest.fixture(scope="module")
def loss(style: torch.Tensor) -> PerceptualLoss:
    return tiny_loss(style)


# -- refine ------------------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_refine_lowers_the_loss(content, loss, optimizer):
    result = refine(content, loss=loss, steps=40, optimizer=optimizer, lr=0.02 if optimizer == "adam" else None)
    assert isinstance(result, GatysResult)
    assert result.steps_done == 40 and not result.cancelled
    assert len(result.history) == 40 and result.seconds > 0
    assert result.loss["total"] < 0.5 * result.history[0]["total"]
    assert result.image.shape == content.shape and result.image.device.type == "cpu"
    assert 0 <= result.image.min() and result.image.max() <= 1
    assert not torch.equal(result.image, content)


def test_refine_with_efficientnet_lite0_lowers_the_loss():
    loss = build_perceptual_loss("efficientnet-lite0", device="cpu")
    assert loss.net.name == "efficientnet-lite0"
    loss.set_style_image(make_style(64, 64, seed=3))
    result = refine(make_image(64, 64, seed=4), loss=loss, init="noise", seed=0, steps=12)
    assert result.loss["total"] < 0.5 * result.history[0]["total"]


def test_build_perceptual_loss_fills_only_unset_weights():
    from trainer.lossnets import DEFAULT_WEIGHTS

    loss = build_perceptual_loss("efficientnet-lite0", style_weight=123.0)
    defaults = DEFAULT_WEIGHTS["efficientnet-lite0"]
    assert loss.style_weight == 123.0
    assert (loss.content_weight, loss.tv_weight) == (defaults.content, defaults.tv)


def test_stored_style_targets_give_the_same_result_as_the_style_image(content, style):
    from_image = refine(content, loss=tiny_loss(style), steps=8, seed=0)

    # As a style file keeps them: Grams by loss-net name, through a torch.save round trip.
    stored = {"lossnet": tiny_loss().compute_style_targets(style)}
    buffer = io.BytesIO()
    torch.save(stored, buffer)
    buffer.seek(0)
    targets = torch.load(buffer, weights_only=True)
    loss = tiny_loss()
    loss.set_style_targets(targets[loss.net.name])
    from_targets = refine(content, loss=loss, steps=8, seed=0)

    assert torch.equal(from_image.image, from_targets.image)
    assert from_image.history == from_targets.history


def test_noise_init_is_deterministic_with_a_seed(content, loss):
    a = refine(content, loss=loss, init="noise", seed=7, steps=3)
    b = refine(content, loss=loss, init="noise", seed=7, steps=3)
    c = refine(content, loss=loss, init="noise", seed=8, steps=3)
    assert torch.equal(a.image, b.image) and a.history == b.history
    assert not torch.equal(a.image, c.image)
    # Noise is far from the content: its content loss dwarfs that of a content start.
    from_content = refine(content, loss=loss, steps=1)
    assert a.history[0]["content"] > 0 and from_content.history[0]["content"] == 0


def test_explicit_init_is_where_the_optimisation_starts(content, loss):
    init = make_image(48, 48, seed=5).flip(-1)
    expected = loss(init, loss.content_features(content)).as_floats()
    result = refine(content, loss=loss, init=init, steps=2, optimizer="adam")
    assert result.history[0]["step"] == 0
    assert result.history[0]["total"] == pytest.approx(expected["total"], rel=1e-6)
    assert result.history[0]["content"] == pytest.approx(expected["content"], rel=1e-6)
    assert torch.equal(init, make_image(48, 48, seed=5).flip(-1))  # the caller's tensor is untouched


def test_init_of_another_size_is_resized_to_the_content(content, loss):
    result = refine(content, loss=loss, init=make_image(24, 30, seed=6), steps=1)
    assert result.image.shape == content.shape


def test_should_stop_cancels_and_returns_the_best_image_so_far(content, loss):
    seen: list[int] = []
    result = refine(
        content, loss=loss, steps=50,
        progress=lambda step, total, terms: seen.append(step) or None,
        should_stop=lambda: len(seen) >= 4,
    )
    assert result.cancelled and result.steps_done == 4 < 50
    assert seen == [1, 2, 3, 4]
    assert [h["step"] for h in result.history] == [0, 1, 2, 3]
    assert result.loss["total"] == min(h["total"] for h in result.history)
    assert result.image.shape == content.shape


def test_progress_reports_every_step_with_the_loss_terms(content, loss):
    calls = []
    refine(content, loss=loss, steps=5, optimizer="adam", progress=lambda *a: calls.append(a))
    assert [c[0] for c in calls] == [1, 2, 3, 4, 5]
    assert all(c[1] == 5 for c in calls)
    assert set(calls[0][2]) >= {"total", "content", "style", "tv"}


def test_stop_before_the_first_step_returns_the_init(content, loss):
    result = refine(content, loss=loss, steps=5, should_stop=lambda: True)
    assert result.cancelled and result.steps_done == 0 and result.history == []
    assert torch.equal(result.image, content)


def test_coarse_to_fine_shares_the_steps_between_scales(content, loss):
    sizes = []
    result = refine(
        content, loss=loss, steps=7, scales=(0.5, 1.0),
        on_image=lambda step, image: sizes.append(tuple(image.shape[-2:])),
    )
    assert result.steps_done == 7 and result.image.shape == content.shape
    assert [h["scale"] for h in result.history] == [0.5] * 3 + [1.0] * 4
    assert [h["step"] for h in result.history] == list(range(7))
    assert sizes == [(24, 24)] * 3 + [(48, 48)] * 4
    explicit = refine(content, loss=loss, steps=[5, 1], scales=(0.5, 1.0))
    assert [h["scale"] for h in explicit.history] == [0.5] * 5 + [1.0]


def test_keep_detail_carries_only_the_coarse_change_to_the_finer_scale(content, loss):
    """With keep_detail the init's pixel detail survives the coarse scales; without it, upsampling
    the coarse image blurs it away."""
    checker = (torch.arange(48).view(1, 1, 48, 1) + torch.arange(48).view(1, 1, 1, 48)) % 2 * 0.2 - 0.1
    init = (content + checker).clamp(0, 1)
    kept = refine(content, loss=loss, init=init, steps=[4, 1], scales=(0.5, 1.0), keep_detail=True)
    blurred = refine(content, loss=loss, init=init, steps=[4, 1], scales=(0.5, 1.0))
    assert kept.steps_done == blurred.steps_done == 5

    def detail(image):  # correlation of the image's finest pattern with the checkerboard
        return float(((image - content) * checker).mean() / (checker * checker).mean())

    assert detail(kept.image) > 0.5 and abs(detail(blurred.image)) < 0.2
    # a stop before the finest scale still returns the init's detail at full size
    seen: list[int] = []
    stopped = refine(content, loss=loss, init=init, steps=[4, 1], scales=(0.5, 1.0), keep_detail=True,
                     should_stop=lambda: len(seen) >= 4, progress=lambda s, t, terms: seen.append(s))
    assert stopped.cancelled and stopped.steps_done == 4 and stopped.image.shape == content.shape
    assert detail(stopped.image) > 0.5


@pytest.mark.parametrize(
    "kwargs",
    [{"steps": 0}, {"optimizer": "sgd"}, {"init": "zeros"}, {"scales": (0.0,)}, {"steps": [1, 2]}],
)
def test_bad_arguments_raise_value_error(content, loss, kwargs):
    with pytest.raises(ValueError):
        refine(content, loss=loss, **kwargs)


def test_refine_needs_style_targets(content):
    with pytest.raises(RuntimeError, match="style targets"):
        refine(content, loss=tiny_loss(), steps=1)


# -- command line ------------------------------------------------------------------------------

FLAGS = [
    "--output", "--size", "--style-size", "--steps", "--optimizer", "--lr", "--content-weight",
    "--style-weight", "--tv-weight", "--init", "--scales", "--loss-net", "--vgg-weights",
    "--device", "--seed", "--save-every",
]


def test_cli_help_mentions_every_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        gatys.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in FLAGS:
        assert flag in out, flag
    for choice in ("lbfgs", "adam", "efficientnet-lite0", "vgg19", "noise"):
        assert choice in out


@pytest.fixture
def images(tmp_path):
    content = tmp_path / "content.png"
    style = tmp_path / "style.jpg"
    tensor_to_pil(make_image(40, 48, seed=1)).save(content)
    tensor_to_pil(make_style(40, 40, seed=2)).save(style)
    return content, style


def test_cli_missing_content_file_is_a_clear_error(images, tmp_path, capsys):
    _, style = images
    missing = tmp_path / "no_such_photo.jpg"
    rc = gatys.main([str(missing), str(style), "-o", str(tmp_path / "out.png")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "error:" in err and "no_such_photo.jpg" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--loss-net", "vgg19", "--vgg-weights", "{tmp}/missing_vgg.pth"], "missing_vgg.pth"),
        (["--device", "tpu"], "tpu"),
        (["-o", "{tmp}/out.notanimage"], ".notanimage"),
    ],
)
def test_cli_runtime_errors_exit_2(images, tmp_path, capsys, extra, message):
    content, style = images
    argv = [str(content), str(style), "-o", str(tmp_path / "out.png")]
    argv += [a.format(tmp=tmp_path) for a in extra]
    assert gatys.main(argv) == 2
    err = capsys.readouterr().err
    assert "error:" in err and message in err and "Traceback" not in err


@pytest.mark.parametrize("flag", ["--steps", "--size", "--style-size", "--save-every", "--scales"])
@pytest.mark.parametrize("value", ["0", "-3", "x", ","])
def test_cli_rejects_non_positive_counts(images, tmp_path, capsys, flag, value):
    content, style = images
    with pytest.raises(SystemExit) as exc:
        gatys.main([str(content), str(style), "-o", str(tmp_path / "o.png"), flag, value])
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_cli_tiny_run_writes_the_output(images, tmp_path):
    content, style = images
    out = tmp_path / "sub" / "out.png"
    argv = [
        str(content), str(style), "-o", str(out), "--steps", "3", "--size", "32",
        "--loss-net", "efficientnet-lite0", "--device", "cpu", "--save-every", "2",
    ]
    assert gatys.main(argv) == 0
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == (38, 32)  # 48x40 with its short side at 32
    with Image.open(tmp_path / "sub" / "out_step0002.png") as img:
        assert img.size == (38, 32)
