"""The typed configuration of one training run, resolved before any photo is read."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from trainer.training.distributed import DistInfo


@dataclass
class RunConfig:
    """What `trainer.training.loop.fit` trains.

    `settings` holds the recipe (command line, recipe defaults and a resumed checkpoint's
    settings, in that precedence); it is what checkpoints and the style file record.
    """

    settings: argparse.Namespace
    info: DistInfo
    device: torch.device
    amp: torch.dtype | None  # autocast dtype, None for float32
    channels_last: bool
    name: str
    out: Path  # the style file
    checkpoint_path: Path  # where this run writes checkpoints (next to `out`)
    resume_path: Path  # where a resumed run read its checkpoint
    resume: dict[str, Any] | None  # that checkpoint, loaded
    style_image: Image.Image
    style_size: int

    @property
    def global_batch(self) -> int:
        return self.settings.batch_size * self.info.world_size
