"""Fast neural style transfer training (Johnson et al., 2016): one TransformerNet per painting.

    python -m trainer.fast --dataset PHOTOS --style PAINTING.jpg [--steps N | --epochs N]
    torchrun --nproc_per_node 4 -m trainer.fast --dataset PHOTOS --style PAINTING.jpg ...

The network learns to stylize any photo in one forward pass by minimising the perceptual loss
(content, Gram style, total variation) measured through a frozen loss network against crops of
the photo folder. The result is a style file (`trainer.stylefile`) that the app loads.

Output: `--out` (default `runs/<name>/<name>.pt`); next to it `checkpoint.pt` (every
`--checkpoint-every` steps, at the end and on Ctrl-C/SIGTERM) and `samples/step_XXXXXX.png`.
`--resume` continues from a checkpoint and gives the same weights as an uninterrupted run (exactly
on CPU; on CUDA up to cuDNN's non-determinism): the data order is a pure function of the seed,
the epoch and the position in it (see `trainer.dataset`). Settings not given again on the
command line are taken from the checkpoint.

Mixed precision (`--amp`): on CUDA it is on by default, with bfloat16 where the GPU supports it,
else float16 with a GradScaler. On CPU it means bfloat16 autocast, on by default only where the
CPU has native bf16 (AVX512-BF16 / AMX), where it trains ~1.7x faster; elsewhere it would be slower.

Multi-GPU: under torchrun (RANK/WORLD_SIZE/LOCAL_RANK set, WORLD_SIZE > 1) every process trains
a DistributedDataParallel replica on its shard of each epoch. `--batch-size` is PER PROCESS: the
global batch is batch-size x world size, and `--steps` counts optimizer steps (so N processes see
N times the images per step). Rank 0 alone logs, shows progress, writes checkpoints, samples
and the style file.

The pieces live in `trainer.training`: `parser` (the flags), `recipe` (defaults and the resume
policy), `distributed`, `step`, `prepare`, `loop` and `metadata`; this module is the command that
ties them.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import torch

from trainer import checkpoint as ckpt
from trainer.images import ImageLoadError, load_image
from trainer.training import recipe
from trainer.training.config import RunConfig
from trainer.training.distributed import DistInfo, dist_from_env, process_group, rank_device
from trainer.training.errors import OutputError, UsageError
from trainer.training.loop import INTERRUPTED_EXIT, fit, outputs_locked
from trainer.training.parser import build_parser


def resolve_run(args: argparse.Namespace, explicit: set[str], info: DistInfo) -> RunConfig:
    """The run parsed `args` ask for, with a resumed checkpoint's settings and the recipe's defaults
    filled in; checks everything that can be checked before a photo is read."""
    _, resume_path = recipe.output_paths(args)
    payload = None
    if args.resume is not None:
        try:
            payload = ckpt.load_checkpoint(resume_path)
        except ckpt.CheckpointError as exc:
            raise UsageError(f"--resume: {exc}") from None
        recipe.apply_checkpoint_args(args, explicit, payload.get("args", {}))
        recipe.check_resumed_painting(args.style, payload.get("args", {}), resume_path, args.force)
    # After the checkpoint's settings (its --name) are in: new checkpoints always go next to --out.
    out = recipe.output_paths(args)[0]
    recipe.check_out(out, args.style, args.force)

    device = rank_device(args.device, info)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    amp = recipe.resolve_amp(args, device)

    # Style image first: a typo there should not wait for a dataset scan or a loss net build.
    try:
        style_image = load_image(args.style)
    except ImageLoadError as exc:
        raise UsageError(f"--style: {exc}") from None
    style_size = args.style_size or min(recipe.DEFAULT_STYLE_SIZE, min(style_image.size))
    summary = recipe.apply_recipe_defaults(args, device, amp)
    if info.is_main:
        recipe.logger.info(summary)
    return RunConfig(
        settings=args, info=info, device=device, amp=amp, channels_last=device.type == "cuda",
        name=args.name or args.style.stem, out=out, checkpoint_path=out.parent / ckpt.FILENAME,
        resume_path=resume_path, resume=payload, style_image=style_image, style_size=style_size,
    )


def train(args: argparse.Namespace, explicit: set[str], info: DistInfo) -> int:
    """Run a training as configured by parsed `args`; returns the exit status."""
    run = resolve_run(args, explicit, info)
    with outputs_locked(run), process_group(info, run.device):
        return fit(run)


def _setup_logging(info: DistInfo) -> int:
    """Log lines to stderr unless the caller configured logging; returns the level to restore."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    trainer_logger = logging.getLogger("trainer")
    previous = trainer_logger.level
    if previous == logging.NOTSET:  # other ranks: warnings and errors only
        trainer_logger.setLevel(logging.INFO if info.is_main else logging.WARNING)
    return previous


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (0, 2 for bad input, 130 when interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    info = DistInfo()
    previous_level = logging.getLogger("trainer").level
    try:
        info = dist_from_env()
        previous_level = _setup_logging(info)
        args = build_parser().parse_args(argv)
        explicit = set(vars(build_parser(explicit_only=True).parse_args(argv)))
        return train(args, explicit, info)
    except UsageError as exc:
        if info.is_main:
            print(f"error: {exc}", file=sys.stderr)
        return 2
    except OutputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C, or one before training started
        if info.is_main:
            print("error: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT
    finally:
        logging.getLogger("trainer").setLevel(previous_level)


if __name__ == "__main__":
    raise SystemExit(main())
