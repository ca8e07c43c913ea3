"""The training run: with what `trainer.training.prepare` builds for a `RunConfig`, train epoch by
epoch (`train_one_epoch`), checkpoint and sample on the way, and write the style file.

Rank 0 alone logs, shows progress and writes files; every rank calls the same collectives at the
same steps (`trainer.training.distributed`).
"""
from __future__ import annotations

import contextlib
import logging
import math
import signal
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from trainer import checkpoint as ckpt
from trainer.dataset import sample_seed
from trainer.fileio import LockedError, exclusive_lock
from trainer.stylefile import save_style
from trainer.training import distributed as ddp
from trainer.training import step as training_step
from trainer.training.config import RunConfig
from trainer.training.errors import UsageError, writing
from trainer.training.metadata import describe, style_meta
from trainer.training.prepare import Position, Training, build_training, resume_position

logger = logging.getLogger("trainer.fast")

INTERRUPTED_EXIT = 130
LOCK_NAME = ".trainer.fast.lock"  # in the --out folder while a run writes there
INTERRUPTED = "interrupted"
OUT_OF_TIME = "out of time"


class LossWindow:
    """Running loss terms, kept on the device and read (one host sync, one all-reduce under DDP)
    every --log-every steps."""

    def __init__(self, terms: int, device: torch.device, global_batch: int) -> None:
        self.sums = torch.zeros(terms, device=device)
        self.global_batch = global_batch
        self.steps = 0
        self.start = time.perf_counter()

    def add(self, terms: torch.Tensor) -> None:
        self.sums += terms
        self.steps += 1

    def report(self, step: int, total_steps: int, info: ddp.DistInfo, bar: tqdm | None) -> None:
        """Log the window's mean terms and rate, then start a new window; a non-finite loss stops the run."""
        content, style, tv, *stab = ddp.window_means(self.sums, self.steps, info)
        if not math.isfinite(content + style + tv + sum(stab)):
            raise UsageError(f"the loss became {content + style + tv + sum(stab)} at step {step}; "
                             "try a lower --lr or --no-amp")
        now = time.perf_counter()
        ips = self.steps * self.global_batch / max(now - self.start, 1e-9)
        if bar is not None:
            bar.set_postfix(content=f"{content:.3g}", style=f"{style:.3g}", tv=f"{tv:.3g}",
                            img_s=f"{ips:.1f}", refresh=False)
        if info.is_main:
            logger.info("step %d/%d: content %.4g style %.4g tv %.4g%s, %.1f images/s", step, total_steps,
                        content, style, tv, f" stability {stab[0]:.4g}" if stab else "", ips)
        self.sums.zero_()
        self.steps, self.start = 0, now


class StopFlag:
    """Ctrl-C / SIGTERM ask the loop to stop after the current step (and checkpoint); a second
    Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopFlag":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum
        for sig, handler in self._previous.items():  # the next signal acts as usual
            signal.signal(sig, handler)

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


# ----------------------------------------------------------------------------- outputs


@contextlib.contextmanager
def outputs_locked(run: RunConfig) -> Iterator[None]:
    """One run at a time writes an --out folder (style file, checkpoint, samples): a second run
    into it is refused instead of both writing and one painting's style silently lost."""
    if not run.info.is_main:
        yield
        return
    folder = run.out.parent
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(exclusive_lock(folder / LOCK_NAME))
        except LockedError as exc:
            raise UsageError(f"--out: another training ({exc}) is writing to {folder}; wait for it to end "
                             "or choose another --out folder") from None
        except OSError as exc:
            raise UsageError(f"--out: cannot create files in {folder} ({exc.strerror or exc})") from None
        yield


def stopped_message(run: RunConfig, pos: Position) -> str:
    """What is left on disk when an output fails mid-run."""
    kept = "the previous checkpoint is kept (continue with --resume)" if run.checkpoint_path.exists() \
        else "no checkpoint was written"
    return f"training stopped at step {pos.step}; {kept}"


def save_checkpoint(run: RunConfig, training: Training, pos: Position) -> None:
    with writing("the checkpoint", run.checkpoint_path, stopped_message(run, pos)):
        ckpt.save_checkpoint(
            run.checkpoint_path, model=training.model, optimizer=training.optimizer,
            scaler=training.scaler if training.scaler.is_enabled() else None, step=pos.step, epoch=pos.epoch,
            batch_in_epoch=pos.batch_in_epoch, batches_per_epoch=training.batches_per_epoch,
            world_size=run.info.world_size, args=training.saved_args, totals=pos.totals,
        )


def save_sample(run: RunConfig, training: Training, pos: Position) -> None:
    path = run.out.parent / "samples" / f"step_{pos.step:06d}.png"
    with writing("the sample image", path, stopped_message(run, pos)):
        training_step.write_sample(training.model, training.held, path, run.amp)
    pos.last_sample = pos.step


def write_style_file(run: RunConfig, training: Training, pos: Position) -> None:
    meta = style_meta(run, training.perceptual, training.config, len(training.paths), pos.step, pos.totals)
    with writing("the style file", run.out, f"the checkpoint {run.checkpoint_path} holds the trained network: "
                 "free some space and run the same command with --resume"):
        save_style(run.out, training.model, meta, {training.perceptual.net.name: training.perceptual.style_targets})
    logger.info("wrote %s (%d steps, %.0f s, %.1f images/s%s)", run.out, pos.step, pos.totals["training_seconds"],
                meta["images_per_second"], f", default recipe {meta['recipe']}" if meta["recipe"] else "")


# ----------------------------------------------------------------------------- training


def stop_reason(run: RunConfig, stop: StopFlag, deadline: float | None) -> str | None:
    """INTERRUPTED (a signal), OUT_OF_TIME (--max-minutes) or None; the same answer on every rank."""
    if ddp.should_stop(stop.signum is not None, run.info, run.device):
        return INTERRUPTED
    if deadline is not None and ddp.should_stop(time.monotonic() >= deadline, run.info, run.device):
        return OUT_OF_TIME
    return None


def train_one_epoch(run: RunConfig, training: Training, pos: Position, window: LossWindow, stop: StopFlag,
                    deadline: float | None, bar: tqdm | None) -> str | None:
    """Train from `pos` to the end of its epoch or of the run; returns why it stopped early, if it did."""
    args = run.settings
    training.sampler.set_epoch(pos.epoch)
    training.sampler.set_start(pos.batch_in_epoch * args.batch_size)
    stop_check = 1 if not run.info.enabled else min(10, args.log_every)
    for batch in training.loader:
        window.add(training_step.train_step(
            batch, training.train_model, training.perceptual, training.optimizer, training.scaler, run.device,
            run.amp, run.channels_last, training.stability, step_seed=sample_seed(args.seed, pos.step, run.info.rank),
        ))
        pos.advance(run.global_batch, training.batches_per_epoch)
        if pos.step % args.log_every == 0 or pos.step == training.total_steps:
            window.report(pos.step, training.total_steps, run.info, bar)
        if bar is not None:
            bar.update(1)
        if run.info.is_main and args.checkpoint_every and pos.step % args.checkpoint_every == 0 \
                and pos.step < training.total_steps:
            save_checkpoint(run, training, pos)
        if training.held is not None and pos.step % args.sample_every == 0:
            save_sample(run, training, pos)
        if pos.step % stop_check == 0:
            reason = stop_reason(run, stop, deadline)
            if reason is not None:
                return reason
        if pos.step >= training.total_steps:
            break
    return None


def fit(run: RunConfig) -> int:
    """Train `run` to its end (or a stop) and write its outputs; returns the exit status."""
    args, info = run.settings, run.info
    training = build_training(run)
    pos = resume_position(run, training)
    if info.enabled:
        training.train_model = nn.parallel.DistributedDataParallel(
            training.model, device_ids=[run.device.index] if run.device.type == "cuda" else None
        )
    if info.is_main:
        p = training.perceptual
        logger.info(
            "training %s: %d image(s), %d step(s) of %d x %d px, batch %d%s, %s on %s%s, %s loss "
            "(content %g, style %g, tv %g)",
            run.name, len(training.paths), training.total_steps, args.image_size, args.image_size, args.batch_size,
            f" x {info.world_size} processes" if info.enabled else "", describe(training.config), run.device,
            f" with {str(run.amp).removeprefix('torch.')} autocast" if run.amp else "", p.net.name,
            p.content_weight, p.style_weight, p.tv_weight,
        )
    bar = tqdm(total=training.total_steps, initial=pos.step, desc=run.name, unit="step", dynamic_ncols=True,
               smoothing=0.1) if info.is_main else None
    deadline = time.monotonic() + 60.0 * args.max_minutes if args.max_minutes else None
    window = LossWindow(4 if training.stability else 3, run.device, run.global_batch)
    reason = None
    training.model.train()
    pos.start_clock()
    try:
        # While the bar is shown, log lines go through tqdm.write so they don't tear it.
        with StopFlag() as stop, logging_redirect_tqdm() if bar is not None else contextlib.nullcontext():
            while pos.step < training.total_steps and reason is None:
                reason = train_one_epoch(run, training, pos, window, stop, deadline, bar)
    finally:
        pos.stop_clock()
        if bar is not None:
            bar.close()
    return finish(run, training, pos, reason)


def finish(run: RunConfig, training: Training, pos: Position, reason: str | None) -> int:
    """The last checkpoint, sample and (unless interrupted) the style file; returns the exit status."""
    if reason == INTERRUPTED:
        if run.info.is_main:
            save_checkpoint(run, training, pos)
            logger.warning("interrupted at step %d of %d; checkpoint saved to %s (continue with --resume)",
                           pos.step, training.total_steps, run.checkpoint_path)
        ddp.barrier(run.info)
        return INTERRUPTED_EXIT
    if run.info.is_main:
        if reason == OUT_OF_TIME:
            logger.warning("--max-minutes %g reached at step %d of %d; writing the style file (continue with "
                           "--resume)", run.settings.max_minutes, pos.step, training.total_steps)
        save_checkpoint(run, training, pos)
        if training.held is not None and pos.last_sample != pos.step:
            save_sample(run, training, pos)
        write_style_file(run, training, pos)
    ddp.barrier(run.info)
    return 0
