"""torchrun's process group as the training loop sees it: who is rank 0, and the few collective
operations every rank must call at the same step."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from trainer.devices import resolve_device
from trainer.training.errors import UsageError


@dataclass(frozen=True)
class DistInfo:
    """This process's place under torchrun (rank 0 of 1 without it)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_from_env() -> DistInfo:
    """torchrun's RANK / WORLD_SIZE / LOCAL_RANK, or a single process."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return DistInfo()
        return DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    except (KeyError, ValueError):
        raise UsageError("WORLD_SIZE is set but RANK is missing or not a number; launch with torchrun") from None


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast(obj: Any, info: DistInfo) -> Any:
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def window_means(sums: torch.Tensor, steps: int, info: DistInfo) -> list[float]:
    """The loss terms averaged over the window's steps and over every process. All ranks get the
    same numbers, so a NaN on one rank stops every rank at the same step, instead of that rank
    raising alone and the others hanging in their next all-reduce."""
    if info.enabled:
        sums = sums.clone()
        dist.all_reduce(sums)
        steps *= info.world_size
    return (sums / steps).tolist()


def should_stop(local: bool, info: DistInfo, device: torch.device) -> bool:
    if not info.enabled:
        return local
    flag = torch.tensor([1.0 if local else 0.0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)  # every rank stops after the same step
    return bool(flag.item())




def rank_device(name: str, info: DistInfo) -> torch.device:
    """The device this process trains on: under torchrun on CUDA, the GPU of its LOCAL_RANK."""
    try:
        device = resolve_device(name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if device.type == "cuda":
        if info.enabled:
            if info.local_rank >= torch.cuda.device_count():
                raise UsageError(f"LOCAL_RANK {info.local_rank} but only {torch.cuda.device_count()} GPU(s)")
            device = torch.device("cuda", info.local_rank)
        elif device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


@contextlib.contextmanager
def process_group(info: DistInfo, device: torch.device) -> Iterator[None]:
    """The torchrun process group for the duration of a run (nothing for a single process)."""
    if info.enabled:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                device_id=device if device.type == "cuda" else None)
    try:
        yield
    finally:
        if info.enabled and dist.is_initialized():
            dist.destroy_process_group()
