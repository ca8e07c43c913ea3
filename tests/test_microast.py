"""The MicroAST port (nstcam.engines.microast) against the published model.

`data/microast_reference.npz` was computed once with the authors' own code (EndyWon/MicroAST at
commit 5a6c905: net_microAST.TestNet with the four published *_iter_160000 checkpoints, CPU fp32,
torch.no_grad) from a 24x16 crop of the eval photo chicago.jpg and a 32x32 van_gogh.jpg: the
modulator's outputs and the stylized image at alpha 1 and 0.5.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nstcam.engines.microast import CODE_ROWS, StyleCode, encode_style, instant_net

REFERENCE = Path(__file__).parent / "data" / "microast_reference.npz"


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(REFERENCE) as data:
        return dict(data)


def _content(reference: dict[str, np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(reference["content"]).permute(2, 0, 1)[None].float() / 255


def test_style_code_matches_the_published_modulator(reference) -> None:
    code = encode_style(reference["style"]).rows
    for row, key in (("scale1", "w1"), ("gate1", "b1"), ("scale2", "w2"), ("gate2", "b2")):
        np.testing.assert_allclose(code[CODE_ROWS.index(row)], reference[key], atol=1e-5)


@pytest.mark.parametrize("alpha, key", [(1.0, "out_alpha1"), (0.5, "out_alpha05")])
def test_output_matches_the_published_model_in_fp32(reference, alpha: float, key: str) -> None:
    net = instant_net(encode_style(reference["style"]), alpha=alpha)
    with torch.inference_mode():
        out = net(_content(reference)).numpy()
    assert out.shape == reference[key].shape
    assert np.abs(out - reference[key]).max() < 1e-4


def test_any_frame_size_comes_back_at_its_size(reference) -> None:
    net = instant_net(encode_style(reference["style"]))
    with torch.inference_mode():
        for h, w in ((30, 42), (17, 21), (24, 32)):
            assert net(torch.rand(1, 3, h, w)).shape == (1, 3, h, w)


def test_bf16_frames_are_computed_in_fp32(reference) -> None:
    """The engine hands bf16 frames on CPUs with native bf16; the net answers in bf16 but its
    insides stay fp32 (bf16 statistics cost ~30 dB): the output is the fp32 one, rounded."""
    net = instant_net(encode_style(reference["style"]))
    x = _content(reference)
    with torch.inference_mode():
        full = net(x)
        half = net(x.bfloat16())
    assert half.dtype == torch.bfloat16
    assert (half.float() - full).abs().max() < 1e-2  # bf16 rounding of the output only


def test_a_style_code_refuses_the_wrong_shape_or_nan() -> None:
    with pytest.raises(ValueError, match="float32"):
        StyleCode(np.zeros((4, 64), np.float32))
    bad = np.zeros((8, 64), np.float32)
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        StyleCode(bad)
