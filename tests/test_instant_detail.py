"""The photo's fine luma added back to instant styles (nstcam.engines.detail), and its amount
calibrated per painting and kept in the style file."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from nstcam.engines.calibration import DETAIL_MAX, DETAIL_SIGMA, DETAIL_STEP, PROBE_STRUCTURE
from nstcam.engines.detail import LumaDetail, calibrate_amount
from nstcam.engines.instant import DETAIL_AMOUNT
from nstcam.engines.instant import InstantStyle, InstantStyleError, load_instant, save_instant
from nstcam.engines.microast import StyleCode, encode_style, instant_net
from nstcam.jobs.instant_style import PROBE_SIZE, make_instant_style, probe_frames
from trainer.metrics import colour_distance, edge_correlation, stylize
from test_instant_style import painting


def scene(h: int = 64, w: int = 96) -> torch.Tensor:
    """An RGB (1, 3, H, W) photo-like image: shaded background, boxes, a disc and thin lines."""
    y, x = np.mgrid[0:h, 0:w] / np.array([h, w]).reshape(2, 1, 1)
    img = np.stack([0.3 + 0.4 * x, 0.5 - 0.3 * y, 0.4 + 0.2 * x * y], -1)
    img[10:30, 12:40] = (0.9, 0.8, 0.2)
    img[36:58, 50:80] = (0.1, 0.2, 0.6)
    img[(y * h - 40) ** 2 + (x * w - 25) ** 2 < 100] = (0.8, 0.1, 0.1)
    img[:, 86:88] = 0.05
    img[5:7, :] = 0.95
    return torch.from_numpy(img.astype(np.float32)).permute(2, 0, 1)[None]


def test_instant_styles_keep_more_of_the_photos_edges_than_the_published_model() -> None:
    art = painting(3, (64, 64))
    style = InstantStyle(encode_style(art).rows, b"")
    photo = scene()
    plain = stylize(instant_net(StyleCode(style.code)), photo)
    kept = stylize(style.build("cpu", torch.float32), photo)
    assert edge_correlation(kept, photo, blur_sigma=0.0) > edge_correlation(plain, photo, blur_sigma=0.0) + 0.15
    paint = torch.from_numpy(art).permute(2, 0, 1)[None].float() / 255
    assert colour_distance(kept, paint) < colour_distance(plain, paint) + 2  # the palette stays


def test_the_band_is_grey_zero_mean_and_nothing_on_flat_or_tiny_frames() -> None:
    band = LumaDetail(DETAIL_AMOUNT, DETAIL_SIGMA)
    photo = scene()
    out = band(photo)
    assert out.shape == (1, 1, 64, 96)  # one channel, added alike to R, G and B: no chroma
    assert out.abs().max() > 0.05 and abs(float(out.mean())) < 2e-3
    assert band(torch.full((1, 3, 20, 30), 0.4)).abs().max() < 1e-6
    assert band(torch.rand(1, 3, 3, 40)).abs().max() == 0  # too small to reflect-pad: no band


def test_instant_net_without_detail_is_the_published_model() -> None:
    code = encode_style(painting(2, (48, 48)))
    x = scene()
    with torch.inference_mode():
        assert torch.equal(instant_net(code)(x), instant_net(code, detail=0.0)(x))
        assert not torch.allclose(instant_net(code)(x), instant_net(code, detail=DETAIL_AMOUNT)(x))


def _structure(plain, amount: float, probes) -> float:
    band = LumaDetail(1.0, DETAIL_SIGMA)
    return float(np.mean([edge_correlation((plain(x) + amount * band(x)).clamp(0, 1), x, blur_sigma=0.0)
                          for x in probes]))


def test_calibration_raises_the_band_only_as_far_as_the_style_hides_the_photo() -> None:
    """A style that keeps the photo's structure gets the least band; one that paints over it with
    texture of its own gets more, the least amount (on the grid) that keeps PROBE_STRUCTURE."""
    probes = probe_frames()
    assert len(probes) >= 2 and all(p.shape[-2:] == (PROBE_SIZE[1], PROBE_SIZE[0]) for p in probes)
    assert calibrate_amount(lambda x: 0.2 + 0.6 * x, probes) == DETAIL_AMOUNT
    rng = torch.Generator().manual_seed(0)
    texture = torch.rand(1, 3, PROBE_SIZE[1] // 4, PROBE_SIZE[0] // 4, generator=rng)

    def painted_over(x: torch.Tensor, cover: float) -> torch.Tensor:
        strokes = torch.nn.functional.interpolate(texture, size=x.shape[-2:], mode="nearest")
        return (1 - cover) * x + cover * strokes

    amounts = []
    for cover in (0.36, 0.42):
        plain = lambda x, c=cover: painted_over(x, c)  # noqa: E731
        amount = calibrate_amount(plain, probes)
        assert DETAIL_AMOUNT < amount < DETAIL_MAX
        assert _structure(plain, amount, probes) >= PROBE_STRUCTURE > _structure(plain, amount - DETAIL_STEP, probes)
        amounts.append(amount)
    assert amounts[1] > amounts[0]  # more painted over, more band
    assert calibrate_amount(lambda x: texture.expand(1, 3, -1, -1).repeat(1, 1, 4, 4)[..., :x.shape[-2], :x.shape[-1]],
                            probes) == DETAIL_MAX  # nothing of the photo left: the most, no more


def test_a_made_style_stores_its_calibrated_amount_and_its_network_adds_that(tmp_path) -> None:
    art = painting(3, (64, 64))
    style = make_instant_style(art, tmp_path, "swirls")
    code = StyleCode(style.code)
    assert style.meta["detail"] == calibrate_amount(instant_net(code), probe_frames())
    back = load_instant(style.path)
    assert back.detail == style.meta["detail"]
    net = back.build("cpu", torch.float32)
    assert net.detail is not None and net.detail.amount == back.detail


def test_a_file_without_an_amount_loads_with_the_old_one_and_is_calibrated_when_made_again(tmp_path) -> None:
    art = painting(4, (64, 64))
    made = make_instant_style(art, tmp_path, "old")
    calibrated = made.meta.pop("detail")
    save_instant(made.path, made)  # as the files made before calibration
    old = load_instant(made.path)
    assert "detail" not in old.meta and old.detail == DETAIL_AMOUNT
    assert old.build("cpu", torch.float32).detail.amount == DETAIL_AMOUNT
    again = make_instant_style(art, tmp_path, "old")  # the same picture: the file is upgraded
    assert again.path == made.path and load_instant(made.path).detail == calibrated


@pytest.mark.parametrize("bad", [-0.5, "much", float("nan"), True])
def test_a_bad_amount_is_a_damaged_file(tmp_path, bad) -> None:
    style = make_instant_style(painting(5, (48, 48)), tmp_path, "x")
    style.meta["detail"] = bad
    save_instant(style.path, style)
    with pytest.raises(InstantStyleError, match="x.instant"):
        load_instant(style.path)


def test_onnx_runtime_adds_each_styles_own_amount() -> None:
    """The amount is an input of the shared MicroAST graph: ONNX Runtime follows each style's as
    torch does, two styles of one code but different amounts in one engine."""
    pytest.importorskip("onnxruntime")
    from nstcam.engines.ort import OnnxStyleEngine
    from nstcam.engines.torch_engine import StyleEngine

    code = encode_style(painting(6, (48, 48))).rows
    styles = {"half": InstantStyle(code, b"", {"detail": DETAIL_AMOUNT}),
              "most": InstantStyle(code, b"", {"detail": DETAIL_MAX})}
    ort = OnnxStyleEngine(styles, device="cpu", size=None, threads=1)
    ours = StyleEngine(styles, device="cpu", size=None, precision="fp32", channels_last=False)
    frame = (scene(48, 62)[0].permute(1, 2, 0).numpy()[..., ::-1] * 255).astype(np.uint8)  # BGR; 62: padded
    got = {name: ort.stylize(frame, style=name).astype(int) for name in styles}
    for name in styles:
        assert np.abs(got[name] - ours.stylize(frame, style=name)).max() <= 2, name
    assert np.abs(got["most"] - got["half"]).mean() > 1


def test_without_torch_the_amount_is_calibrated_on_onnx_runtime_alike() -> None:
    """A launch on ONNX Runtime (most AVX2 CPUs, the lite bundle) calibrates there, with OpenCV's
    figures: the same amount as torch's, or a grid step off where a probe's pixel saturates."""
    pytest.importorskip("onnxruntime")
    from nstcam.engines.calibration import luma_band
    from nstcam.jobs.instant_style import calibrated_detail

    from nstcam.engines.calibration import calibrate_outputs

    for seed in (3, 7):
        code = encode_style(painting(seed, (64, 64))).rows
        assert abs(calibrated_detail(code, "torch") - calibrated_detail(code, "onnxruntime")) <= DETAIL_STEP, seed
    photos = [scene(48, 64)[0].permute(1, 2, 0).numpy().astype(np.float64)]
    assert calibrate_outputs(photos, photos) == DETAIL_AMOUNT  # the photo itself: the least band
    texture = cv2.GaussianBlur(np.random.default_rng(0).random(photos[0].shape), (0, 0), 1.0)
    painted = [np.clip(0.2 * cv2.GaussianBlur(p, (0, 0), 2.0) + 0.8 * texture, 0, 1) for p in photos]
    assert DETAIL_AMOUNT < calibrate_outputs(painted, photos)  # strokes over washed-out edges: more band
    x = scene(40, 52)
    band = LumaDetail(1.0, DETAIL_SIGMA)(x)[0, 0].numpy()
    np.testing.assert_allclose(luma_band(x[0].permute(1, 2, 0).numpy()), band, atol=1e-5)
