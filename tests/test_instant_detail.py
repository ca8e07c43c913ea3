"""The photo's fine luma added back to instant styles (nstcam.engines.detail)."""
from __future__ import annotations

import numpy as np
import torch

from nstcam.engines.detail import DETAIL_AMOUNT, DETAIL_SIGMA, LumaDetail
from nstcam.engines.instant import InstantStyle
from nstcam.engines.microast import StyleCode, encode_style, instant_net
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
