"""One optimizer step of fast training, and the sample grid: shared by the loop and by
`trainer.bench`, which times exactly this step."""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from trainer.dataset import ImageFolderDataset
from trainer.images import save_image
from trainer.losses import apply_warp, random_warp, stability_loss
from trainer.perceptual import PerceptualLoss
from trainer.transformer import TransformerNet

SAMPLE_IMAGES = 4


def autocast(device: torch.device, amp: torch.dtype | None) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext()


@dataclass(frozen=True)
class Stability:
    """The compound stability regularisation of a training run (see `trainer.losses.stability_loss`)."""

    weight: float
    shift: float = 2.0  # px
    rotate: float = 1.0  # degrees
    noise: float = 0.02  # std on the 0-1 scale

    @property
    def margin(self) -> int:
        """Border left out of the loss: the shift plus the rotation's reach at a 192 px crop's edge."""
        return math.ceil(self.shift + math.radians(self.rotate) * 96) + 2


def train_step(
    batch: torch.Tensor,
    model: nn.Module,
    perceptual: PerceptualLoss,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    device: torch.device,
    amp: torch.dtype | None,
    channels_last: bool,
    stability: Stability | None = None,
    step_seed: int = 0,
) -> torch.Tensor:
    """One optimizer step on a uint8 batch; returns the (content, style, tv[, stability]) terms, on device.

    The stability perturbation is drawn from `step_seed` alone (not the global RNG), so a resumed
    run draws the same warps and noise as an uninterrupted one. Shared with trainer.bench so the
    benchmark times exactly the training step.
    """
    x = batch.to(device, non_blocking=True)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x = x.float().div_(255.0)
    with autocast(device, amp):
        target = perceptual.content_features(x)
        y = model(x)
        terms = perceptual(y, target)
        total = terms.total
        if stability is not None:
            gen = torch.Generator().manual_seed(step_seed)
            theta = random_warp(x.shape[0], stability.shift, stability.rotate, tuple(x.shape[-2:]), gen, device)
            moved = apply_warp(x, theta)
            moved = moved + stability.noise * torch.randn(moved.shape, generator=gen).to(device, moved.dtype)
            stab = stability.weight * stability_loss(apply_warp(y.float(), theta), model(moved), stability.margin)
            total = total + stab
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(total).backward()
    scaler.step(optimizer)
    scaler.update()
    values = [terms.content, terms.style, terms.tv] + ([stab] if stability is not None else [])
    return torch.stack(values).detach().float()


def held_batch(paths: list[Path], image_size: int) -> torch.Tensor:
    """The first few images, centre-cropped: the fixed batch the sample grids show."""
    ds = ImageFolderDataset(paths[:SAMPLE_IMAGES], image_size, random_crop=False, flip=False)
    return torch.stack([ds[i] for i in range(len(ds))])


@torch.no_grad()
def write_sample(model: TransformerNet, batch: torch.Tensor, path: Path, amp: torch.dtype | None) -> None:
    """Inputs on the top row, their stylization below, as one PNG."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    x = batch.to(device)
    with autocast(device, amp):
        y = model(x).float().clamp_(0, 1)
    model.train(was_training)
    grid = torch.cat([torch.cat(list(x), dim=-1), torch.cat(list(y), dim=-1)], dim=-2)
    save_image(grid.unsqueeze(0), path)


