"""Loss math checked against hand computation."""
from __future__ import annotations

import pytest
import torch

from trainer.losses import content_loss, gram_matrix, style_loss, total_variation_loss


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
