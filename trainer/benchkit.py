"""What every benchmark shares (`trainer.bench`, `nstcam.measure.*`): device sync, CUDA flags for
one timed variant, architecture specs on the command line, plain-text tables and JSON results."""
from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from trainer.fileio import atomic_write_bytes
from trainer.transformer import TransformerConfig

_ARCH_ALIASES = {"w": "width", "res": "res_blocks", "r": "res_blocks", "k": "outer_kernel",
                 "kernel": "outer_kernel", "sep": "separable"}


def sync(device: torch.device) -> None:
    """Wait for the device's queued work, so a timer stops when the work is done, not queued."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def cuda_flags(device: torch.device, benchmark: bool | None = None, tf32: bool | None = None) -> Iterator[None]:
    """cuDNN autotuning and TF32 (convolutions and matmuls) for one variant, restored afterwards.

    None leaves a setting as it is (in a fresh process PyTorch's defaults: no autotuning, TF32
    on for cuDNN convolutions and off for matmuls); nothing to do off CUDA.
    """
    if device.type != "cuda":
        yield
        return
    saved = (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    try:
        if benchmark is not None:
            torch.backends.cudnn.benchmark = benchmark
        if tf32 is not None:
            torch.backends.cudnn.allow_tf32 = tf32
            torch.backends.cuda.matmul.allow_tf32 = tf32
        yield
    finally:
        (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32,
         torch.backends.cuda.matmul.allow_tf32) = saved


def parse_arch(text: str) -> TransformerConfig:
    """"width=16,res_blocks=5,outer_kernel=9,separable=1" (or w=16,r=5,k=9,sep) -> TransformerConfig
    (unset fields: the default); an argparse type."""
    values: dict[str, Any] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, eq, value = part.partition("=")
        key = _ARCH_ALIASES.get(key.strip().replace("-", "_"), key.strip().replace("-", "_"))
        if key not in TransformerConfig.__dataclass_fields__:
            raise argparse.ArgumentTypeError(
                f"unknown architecture field {key!r} in {text!r}; use width, res_blocks, outer_kernel, separable")
        if isinstance(TransformerConfig.__dataclass_fields__[key].default, bool):  # separable, ...
            flag = value.strip().lower() if eq else "1"
            if flag not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise argparse.ArgumentTypeError(f"{key} must be 0/1/true/false, got {value!r}")
            values[key] = flag in ("1", "true", "yes", "on")
            continue
        try:
            values[key] = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{key} must be an integer, got {value!r}") from None
    cfg = TransformerConfig(**values)
    if cfg.width < 1 or cfg.res_blocks < 0 or cfg.outer_kernel < 1 or cfg.outer_kernel % 2 == 0:
        raise argparse.ArgumentTypeError(f"invalid architecture {text!r} (width >= 1, res_blocks >= 0, odd kernel)")
    return cfg


def arch_label(cfg: TransformerConfig) -> str:
    """"w16/r5/k9/sep": a network's shape in a table cell."""
    label = f"w{cfg.width}/r{cfg.res_blocks}/k{cfg.outer_kernel}{'/sep' if cfg.separable else ''}"
    return label if getattr(cfg, "bounded_output", True) else label + "/linear"


def _cell(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> str:
    """A plain-text table; columns are (header, key, format spec)."""
    cells = [[h for h, _, _ in columns]] + [[_cell(r.get(k), s) for _, k, s in columns] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """A benchmark's results as indented JSON, written atomically (the folder is created)."""
    atomic_write_bytes(path, json.dumps(data, indent=2).encode("utf-8"))
