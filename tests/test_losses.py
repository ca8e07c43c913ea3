"""Loss math checked against hand computation."""
from __future__ import annotations

import pytest
import torch

from trainer.losses import (
    apply_warp,
    content_loss,
    gram_matrix,
    random_warp,
    smooth_activations,
    stability_loss,
    style_loss,
    total_variation_loss,
)


def test_gram_matrix_matches_hand_computation() -> None:
    # Two channels over a 1x2 image: f0 = [1, 2], f1 = [3, 4]; normalised by c*h*w = 4.
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
    expected = torch.tensor([[1 + 4, 3 + 8], [3 + 8, 9 + 16]]) / 4
    assert torch.allclose(gram_matrix(f)[0], expected)


def test_gram_matrix_is_fp32_under_half_input() -> None:
    f = torch.randn(2, 3, 4, 5).half()
    assert gram_matrix(f).dtype == torch.float32


def test_content_loss_is_mean_squared_error() -> None:
    a, b = torch.zeros(1, 2, 2, 2), torch.full((1, 2, 2, 2), 3.0)
    assert content_loss(a, b).item() == pytest.approx(9.0)


def test_style_loss_weights_layers_and_broadcasts_targets() -> None:
    grams = {"a": torch.ones(2, 3, 3), "b": torch.zeros(2, 4, 4)}
    targets = {"a": torch.zeros(3, 3), "b": torch.full((4, 4), 2.0)}
    # a: mse 1 * weight 2; b: mse 4 * weight 0.5
    assert style_loss(grams, targets, {"a": 2.0, "b": 0.5}).item() == pytest.approx(4.0)


def test_normalized_style_loss_divides_by_target_energy() -> None:
    grams = {"a": torch.zeros(1, 2, 2)}
    targets = {"a": torch.full((2, 2), 10.0)}
    # mse = 100, energy = mean(target^2) = 100 -> 1.0 regardless of scale
    assert style_loss(grams, targets, {"a": 1.0}, normalize=True).item() == pytest.approx(1.0)
    scaled = {"a": torch.full((2, 2), 1000.0)}
    assert style_loss(grams, scaled, {"a": 1.0}, normalize=True).item() == pytest.approx(1.0)


def test_style_loss_needs_a_layer() -> None:
    with pytest.raises(ValueError):
        style_loss({}, {}, {})


def test_total_variation_of_a_step_image() -> None:
    img = torch.zeros(1, 1, 2, 2)
    img[..., :, 1] = 1.0  # vertical edge: horizontal diffs are all 1, vertical diffs 0
    assert total_variation_loss(img).item() == pytest.approx(1.0)
    assert total_variation_loss(torch.ones(1, 3, 4, 4)).item() == 0.0


def test_zero_warp_is_the_identity_and_a_one_pixel_shift_moves_the_image():
    img = torch.rand(2, 3, 20, 24)
    still = random_warp(2, 0.0, 0.0, (20, 24))
    torch.testing.assert_close(apply_warp(img, still), img, atol=1e-5, rtol=0)
    shift = still.clone()
    shift[:, 0, 2] = 2 / 24  # one pixel right in affine_grid's [-1, 1] coordinates
    moved = apply_warp(img, shift)
    torch.testing.assert_close(moved[..., :, :-1], img[..., :, 1:], atol=1e-5, rtol=0)


def test_random_warps_stay_within_their_bounds():
    theta = random_warp(64, 2.0, 1.0, (100, 100), generator=torch.Generator().manual_seed(0))
    shifts_px = theta[:, :, 2] * 50
    assert shifts_px.abs().max() <= 2.0 and shifts_px.abs().max() > 1.0
    angles = torch.rad2deg(torch.atan2(theta[:, 1, 0], theta[:, 0, 0]))
    assert angles.abs().max() <= 1.0 + 1e-4 and angles.abs().max() > 0.5


def test_stability_loss_is_zero_for_an_equivariant_map_and_ignores_the_border():
    x = torch.rand(1, 3, 32, 32)
    theta = random_warp(1, 2.0, 1.0, (32, 32), generator=torch.Generator().manual_seed(1))
    brighten = lambda t: t * 0.5 + 0.25  # noqa: E731  pointwise: commutes with any warp
    assert float(stability_loss(apply_warp(brighten(x), theta), brighten(apply_warp(x, theta)), 4)) < 1e-10
    jittery = brighten(apply_warp(x, theta)) + 0.1 * torch.randn_like(x)
    assert float(stability_loss(apply_warp(brighten(x), theta), jittery, 4)) == pytest.approx(0.01, rel=0.2)
    edges_only = torch.zeros(1, 3, 32, 32)
    edges_only[..., :4, :] = 1
    assert float(stability_loss(edges_only, torch.zeros_like(edges_only), 4)) == 0.0


def test_activation_smoothing_averages_one_whatever_the_size_and_tames_peaks():
    small, large = torch.randn(2, 8, 6, 6), torch.randn(2, 8, 24, 24)
    for f in (small, large):
        s = smooth_activations(f, 1.0)
        assert s.shape == f.shape and (s > 0).all()
        torch.testing.assert_close(s.mean((1, 2, 3)), torch.ones(2))
    cooler = smooth_activations(large, 4.0)
    assert cooler.std() < smooth_activations(large, 1.0).std()  # a higher temperature is flatter
