"""The CPU memory format each network runs fastest in, remembered across launches.

On a CPU the engine times a network in both layouts (contiguous and channels_last) on its first
frame and keeps the faster one. Six forward passes at the processing size cost the first frame
about 0.1 s at 320x240 and 0.4 s at 640x480, and the engine process pays them again. The answer
depends only on the machine, the torch build, the precision, the threads, the frame size and the
network, so it is kept under those in the user cache (`<cache>/nstcam/engines/memory_formats.json`) and
later launches skip the timing. A missing, unreadable or damaged file only means timing again, and
deleting it makes the next launch time afresh (e.g. after measuring on a machine busy with
other work). Two launches at once may each time and keep one answer: the file is written whole.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import torch
from torch import nn

from nstcam.host.userdirs import user_cache_dir
from trainer.devices import cpu_name
from trainer.fileio import atomic_write_bytes

log = logging.getLogger(__name__)

MAX_ENTRIES = 64  # oldest dropped first: sizes and styles come and go


def cache_file() -> Path:
    return user_cache_dir() / "memory_formats.json"


def choice_key(net: nn.Module, x: torch.Tensor) -> str:
    """What the faster layout depends on: CPU, torch, precision, threads, input shape, and the
    network: its layers as printed (upsampling mode, blur), its configuration where it has one
    (a TransformerNet's output bound is in its forward, not in a layer) and its tensors' shapes."""
    tensors = [tuple(t.shape) for t in (*net.parameters(), *net.buffers())]
    net_id = hashlib.sha256(f"{net!r} {getattr(net, 'config', None)!r} {tensors}".encode()).hexdigest()[:16]
    return (f"{cpu_name()} | torch {torch.__version__} | {x.dtype} | {torch.get_num_threads()} threads"
            f" | {'x'.join(map(str, x.shape))} | net {net_id}")


def _load() -> dict[str, dict]:
    try:
        data = json.loads(cache_file().read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: no home folder to find the cache in
        log.info("ignoring the remembered memory formats (%s)", exc)
        return {}
    return data if isinstance(data, dict) else {}


def recall(key: str) -> bool | None:
    """True (channels_last) or False (contiguous) as measured before under `key`; None if not."""
    entry = _load().get(key)
    choice = entry.get("channels_last") if isinstance(entry, dict) else None
    return choice if isinstance(choice, bool) else None


def remember(key: str, channels_last: bool, timings_ms: dict[str, float]) -> None:
    """Keep a measured choice; a cache that cannot be written is logged, never an error."""
    entries = _load()
    entries.pop(key, None)
    entries[key] = {"channels_last": channels_last, **{k: round(v, 2) for k, v in timings_ms.items()}}
    entries = dict(list(entries.items())[-MAX_ENTRIES:])
    try:
        atomic_write_bytes(cache_file(), json.dumps(entries, indent=1).encode("utf-8"))
    except (OSError, RuntimeError) as exc:
        log.info("could not remember the memory format (%s)", exc)
