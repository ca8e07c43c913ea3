"""The CPU memory format each network runs fastest in, remembered across launches.

On a CPU the engine times a network in both layouts (contiguous and channels_last) on its first
frame and keeps the faster one. Six forward passes at the processing size cost the first frame
about 0.1 s at 320x240 and 0.4 s at 640x480, and the engine process pays them again. The answer
depends only on the machine, the torch build, the precision, the threads, the frame size and the
network, so it is kept under those in the user cache (`<cache>/nstcam/memory_formats.json`, kept
as nstcam.host.choices describes) and later launches skip the timing.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from nstcam.host.choices import RememberedChoices
from trainer.devices import cpu_name

_CHOICES = RememberedChoices("memory_formats")


def cache_file() -> Path:
    return _CHOICES.path


def choice_key(net: nn.Module, x: torch.Tensor) -> str:
    """What the faster layout depends on: CPU, torch, precision, threads, input shape, and the
    network: its layers as printed (upsampling mode, blur), its configuration where it has one
    (a TransformerNet's output bound is in its forward, not in a layer) and its tensors' shapes."""
    tensors = [tuple(t.shape) for t in (*net.parameters(), *net.buffers())]
    net_id = hashlib.sha256(f"{net!r} {getattr(net, 'config', None)!r} {tensors}".encode()).hexdigest()[:16]
    return (f"{cpu_name()} | torch {torch.__version__} | {x.dtype} | {torch.get_num_threads()} threads"
            f" | {'x'.join(map(str, x.shape))} | net {net_id}")


def recall(key: str) -> bool | None:
    """True (channels_last) or False (contiguous) as measured before under `key`; None if not."""
    entry = _CHOICES.get(key)
    choice = entry.get("channels_last") if entry else None
    return choice if isinstance(choice, bool) else None


def remember(key: str, channels_last: bool, timings_ms: dict[str, float]) -> None:
    """Keep a measured choice; a cache that cannot be written is logged, never an error."""
    _CHOICES.put(key, {"channels_last": channels_last, **{k: round(v, 2) for k, v in timings_ms.items()}})
