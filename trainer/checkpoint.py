"""Training checkpoints of fast style training: everything needed to continue bit-for-bit.

A checkpoint holds the TransformerNet and Adam states, the GradScaler state, the step, the data
position (epoch and batches consumed in it), the RNG states of torch / CUDA / Python / NumPy, the
run's arguments and running totals (training seconds, images seen). It is written atomically
(`atomic_torch_save`), so a kill mid-save leaves the previous checkpoint intact, and read with
`weights_only=True`, so only plain containers and tensors are stored (NumPy's RNG array goes in
as a tensor, argparse namespaces as dicts).
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer.fileio import CorruptFileError, UnsafeFileError, atomic_torch_save, load_tensors

FORMAT = "nstcam-checkpoint"
VERSION = 1
FILENAME = "checkpoint.pt"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt or not a checkpoint of this trainer."""


def rng_state() -> dict[str, Any]:
    """The global RNG states of torch (CPU and every CUDA device), Python and NumPy."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured; CUDA states only if this machine has as many devices."""
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def plain(value: Any) -> Any:
    """`value` as types `torch.load(weights_only=True)` accepts: dicts, lists, tensors, None and
    exact bool/int/float/str (paths, `torch.__version__` and other str subclasses become str)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, torch.Tensor) or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def save_checkpoint(
    path: str | Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    step: int,
    epoch: int,
    batch_in_epoch: int,
    batches_per_epoch: int,
    world_size: int,
    args: dict[str, Any],
    totals: dict[str, float] | None = None,
) -> None:
    """Write a checkpoint atomically. `model` is the bare TransformerNet (not a DDP wrapper)."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "step": int(step),
        "data": {
            "epoch": int(epoch),
            "batch_in_epoch": int(batch_in_epoch),
            "batches_per_epoch": int(batches_per_epoch),
            "world_size": int(world_size),
            "seed": args.get("seed"),
        },
        "config": model.config.to_dict() if hasattr(model, "config") else None,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": rng_state(),
        "args": plain(args),
        "totals": dict(totals or {}),
        "torch_version": str(torch.__version__),
    }
    atomic_torch_save(payload, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint onto the CPU; raises CheckpointError naming the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        payload = load_tensors(path)
    except UnsafeFileError as exc:
        raise CheckpointError(f"{path}: not a training checkpoint; {exc}") from None
    except CorruptFileError as exc:
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a training checkpoint of trainer.fast")
    if not isinstance(payload.get("version"), int) or payload["version"] > VERSION:
        raise CheckpointError(f"{path}: checkpoint version {payload.get('version')!r} is newer than this trainer")
    return payload


def restore(
    payload: dict[str, Any],
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    rng: bool = True,
) -> None:
    """Load model, optimizer and scaler states (and the RNG states) from a loaded checkpoint."""
    try:
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
    except (KeyError, RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise CheckpointError(f"checkpoint does not fit this network/optimizer ({first})") from None
    if scaler is not None and payload.get("scaler"):
        scaler.load_state_dict(payload["scaler"])
    if rng and payload.get("rng"):
        set_rng_state(payload["rng"])
