"""Everything a run trains with, built from its `RunConfig`: the photos, the loss with the
painting's targets, the data loader, the network and optimizer, and where a resumed run left off."""
from __future__ import annotations

import ctypes
import functools
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from trainer import checkpoint as ckpt
from trainer.dataset import DatasetError, ImageFolderDataset, ResumableSampler, scan_images
from trainer.fileio import check_writable
from trainer.images import pil_to_tensor, resize_short_side
from trainer.lossnets.errors import LossNetUnavailable
from trainer.perceptual import PerceptualLoss
from trainer.training import distributed as ddp
from trainer.training import recipe
from trainer.training import step as training_step
from trainer.training.config import RunConfig
from trainer.training.errors import UsageError
from trainer.transformer import TransformerConfig, TransformerNet

logger = logging.getLogger("trainer.fast")

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass
class Position:
    """How far training is: what a checkpoint stores besides the network and optimizer states.

    `totals["training_seconds"]` runs with every step, so a checkpoint's rate is right.
    """

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    totals: dict[str, float] = field(default_factory=lambda: {"training_seconds": 0.0, "images": 0.0})
    last_sample: int = -1
    _tick: float = 0.0

    def start_clock(self) -> None:
        self._tick = time.perf_counter()

    def stop_clock(self) -> None:
        self.totals["training_seconds"] += time.perf_counter() - self._tick

    def advance(self, images: int, batches_per_epoch: int) -> None:
        self.step += 1
        self.batch_in_epoch += 1
        self.totals["images"] += images
        self.stop_clock()
        self.start_clock()
        if self.batch_in_epoch == batches_per_epoch:
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0


@dataclass
class Training:
    """The objects a run trains with."""

    model: TransformerNet  # the bare network (checkpoints, samples, the style file)
    train_model: nn.Module  # what steps run: the network, or its DDP wrapper
    config: TransformerConfig
    perceptual: PerceptualLoss
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    stability: training_step.Stability | None
    loader: DataLoader
    sampler: ResumableSampler
    paths: list[Path]
    batches_per_epoch: int
    total_steps: int
    held: torch.Tensor | None  # the sample grid's photos (rank 0, when sampling)
    saved_args: dict[str, Any]  # the settings as checkpoints record them



def init_worker(parent: int, worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C to the main process, which checkpoints and shuts them down,
    and die with it: a killed main process (kill -9, out of memory) shuts nothing down, and a worker
    would otherwise live on, holding its memory, until it noticed (seen: 15-20 s, 445 MB)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
        except (OSError, AttributeError):  # no prctl in this libc: fall back to torch's own watchdog
            return
        if os.getppid() != parent:  # the main process died before prctl took effect
            os._exit(0)


def default_workers() -> int:
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def scan_dataset(run: RunConfig) -> list[Path]:
    """The usable photos: rank 0 checks the output folder and scans (and warns), the others get its list."""
    scanned: list[str] | str = ""
    if run.info.is_main:
        try:
            check_writable(run.out)  # fail now, not after hours of training
            scanned = [str(p) for p in scan_images(run.settings.dataset).paths]
        except OSError as exc:
            scanned = f"--out: cannot create files in {run.out.parent} ({exc.strerror or exc})"
        except DatasetError as exc:
            scanned = f"--dataset: {exc}"
    scanned = ddp.broadcast(scanned, run.info)
    if isinstance(scanned, str):
        raise UsageError(scanned)
    paths = [Path(p) for p in scanned]
    if len(paths) < run.global_batch:
        raise UsageError(
            f"--dataset: {len(paths)} usable image(s), fewer than one batch of {run.global_batch} "
            f"(--batch-size {run.settings.batch_size} x {run.info.world_size} process(es))"
        )
    return paths


def build_loss(run: RunConfig, paths: list[Path]) -> PerceptualLoss:
    """The loss net with the painting's style targets and, when not given, the automatic style weight.

    Records what it resolved in `run.settings`, so a resume (and the style file) knows it.
    """
    args = run.settings
    try:
        perceptual = recipe.build_perceptual(args, run.device)
    except LossNetUnavailable as exc:
        raise UsageError(f"--loss-net {args.loss_net}: {exc}") from None
    except ValueError as exc:  # a --style-layers / --content-layer name the net does not have
        raise UsageError(str(exc)) from None
    perceptual = perceptual.to(run.device)
    if run.channels_last:
        perceptual.net.to(memory_format=torch.channels_last)
    perceptual.smoothing = args.smoothing
    style = pil_to_tensor(resize_short_side(run.style_image, run.style_size)).to(run.device)
    perceptual.set_style_image(style)  # fp32, once
    if args.style_weight is None and perceptual.net.name in recipe.STYLE_BUDGET:
        perceptual.style_weight, distance = recipe.auto_style_weight(perceptual, paths, args.image_size)
        args.style_auto = {"budget": recipe.STYLE_BUDGET[perceptual.net.name], "photo_style_loss": distance}
        if run.info.is_main:
            logger.info("style weight auto: %.4g (the photos' style loss %.4g, budget %g)",
                        perceptual.style_weight, distance, recipe.STYLE_BUDGET[perceptual.net.name])
    args.loss_net = perceptual.net.name
    args.content_weight = float(perceptual.content_weight)
    args.style_weight = float(perceptual.style_weight)
    args.tv_weight = float(perceptual.tv_weight)
    args.style_size = run.style_size
    return perceptual


def build_training(run: RunConfig) -> Training:
    """Data, loss, network and optimizer for `run` (seeded, so the data order and weights are reproducible)."""
    args, info, device = run.settings, run.info, run.device
    paths = scan_dataset(run)
    perceptual = build_loss(run, paths)

    torch.manual_seed(args.seed)
    dataset = ImageFolderDataset(paths, args.image_size, uint8=True)
    sampler = ResumableSampler(len(dataset), args.seed, info.rank, info.world_size)
    workers = default_workers() if args.workers is None else args.workers
    loader = DataLoader(
        dataset, batch_size=args.batch_size, sampler=sampler, drop_last=True, num_workers=workers,
        pin_memory=device.type == "cuda", persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        worker_init_fn=functools.partial(init_worker, os.getpid()) if workers > 0 else None,
    )
    batches_per_epoch = sampler.per_epoch // args.batch_size

    config = TransformerConfig(args.width, args.res_blocks, args.outer_kernel, args.separable,
                               blur_downsample=args.blur_downsample, upsample=args.upsample)
    stability = training_step.Stability(args.stability_weight, args.stability_shift, args.stability_rotate,
                                        args.stability_noise) if args.stability_weight > 0 else None
    model = TransformerNet(config).to(device)
    if run.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scaler = torch.amp.GradScaler(device.type, enabled=run.amp is torch.float16)
    return Training(
        model=model, train_model=model, config=config, perceptual=perceptual, optimizer=optimizer,
        scaler=scaler, stability=stability, loader=loader, sampler=sampler, paths=paths,
        batches_per_epoch=batches_per_epoch,
        total_steps=args.steps if args.steps is not None else args.epochs * batches_per_epoch,
        held=training_step.held_batch(paths, args.image_size) if info.is_main and args.sample_every else None,
        saved_args={**{k: v for k, v in vars(args).items() if k not in ("resume", "force")}, "name": run.name},
    )


def resume_position(run: RunConfig, training: Training) -> Position:
    """Restore the resumed checkpoint's states into `training`; where it left off (or the start)."""
    payload = run.resume
    if payload is None:
        if run.info.is_main and run.checkpoint_path.exists():
            logger.warning("%s exists and will be overwritten; pass --resume to continue it", run.checkpoint_path)
        return Position()
    try:
        ckpt.restore(payload, model=training.model, optimizer=training.optimizer, scaler=training.scaler)
    except ckpt.CheckpointError as exc:
        raise UsageError(f"--resume {run.resume_path}: {exc}") from None
    for group in training.optimizer.param_groups:  # an explicit new --lr applies from here on
        group["lr"] = run.settings.lr
    data = payload["data"]
    pos = Position(step=int(payload["step"]), epoch=int(data["epoch"]), batch_in_epoch=int(data["batch_in_epoch"]))
    if data["batches_per_epoch"] != training.batches_per_epoch or data["world_size"] != run.info.world_size:
        if pos.batch_in_epoch:
            logger.warning("the dataset, batch size or process count changed since the checkpoint; "
                           "continuing with the next epoch")
            pos.epoch, pos.batch_in_epoch = pos.epoch + 1, 0
    pos.totals.update(payload.get("totals", {}))
    if run.info.is_main:
        logger.info("resuming from %s at step %d (epoch %d, batch %d)", run.resume_path, pos.step, pos.epoch,
                    pos.batch_in_epoch)
    return pos
