"""The self-describing style file: architecture, weights, metadata and the style's Gram targets.

One `.pt` file per style and variant, loadable with `torch.load(weights_only=True)`. Storing the
Gram targets of the painting lets the app refine snapshots without the painting on disk.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trainer.fileio import CorruptFileError, UnsafeFileError, atomic_torch_save, load_tensors
from trainer.styleheader import FORMAT, VERSION, StyleFileError, first_line
from trainer.transformer import TransformerConfig, TransformerNet


@dataclass
class StyleModel:
    """A loaded style file. `style_targets` maps loss-net name -> layer -> Gram matrix (C, C)."""

    config: TransformerConfig
    state_dict: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)
    style_targets: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    path: Path | None = None

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or (self.path.stem if self.path else "style"))

    def build(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> TransformerNet:
        """A ready-to-run network in eval mode on `device`."""
        net = TransformerNet(self.config)
        net.load_state_dict({k: v.float() for k, v in self.state_dict.items()})
        return net.to(device=device, dtype=dtype).eval()


def save_style(
    path: str | Path,
    net: TransformerNet,
    meta: dict[str, Any],
    style_targets: dict[str, dict[str, torch.Tensor]],
    half: bool = True,
) -> None:
    """Write a style file atomically; weights in fp16 by default (halves the size, same output)."""
    dtype = torch.float16 if half else torch.float32
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": net.config.to_dict(),
        "state_dict": {k: v.detach().to("cpu", dtype).clone() for k, v in net.state_dict().items()},
        "meta": dict(meta),
        "style_targets": {
            loss_net: {layer: g.detach().to("cpu", torch.float32).clone() for layer, g in grams.items()}
            for loss_net, grams in style_targets.items()
        },
    }
    atomic_torch_save(payload, path)


def load_style(path: str | Path) -> StyleModel:
    path = Path(path)
    if not path.is_file():
        raise StyleFileError(f"{path}: no such style file")
    try:
        path.open("rb").close()  # torch would report a file it may not read as a corrupt one
    except OSError as exc:
        advice = "; check its permissions" if isinstance(exc, PermissionError) else ""
        raise StyleFileError(f"{path}: unreadable style file ({exc.strerror or exc}){advice}") from None
    try:
        payload = load_tensors(path)
    except UnsafeFileError as exc:
        raise StyleFileError(f"{path}: not a style file; {exc}") from None
    except CorruptFileError as exc:
        raise StyleFileError(f"{path}: corrupt or truncated style file ({exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise StyleFileError(f"{path}: not an nstcam style file (no '{FORMAT}' header)")
    version = payload.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise StyleFileError(
            f"{path}: style file format version {version!r} is newer than this nstcam supports "
            f"({VERSION}); upgrade nstcam"
        )
    try:
        model = StyleModel(
            config=TransformerConfig.from_dict(payload["config"]),
            state_dict=payload["state_dict"],
            meta=dict(payload.get("meta", {})),
            style_targets=payload.get("style_targets", {}),
            path=path,
        )
        # Fail at load time, naming the file, rather than at first use.
        weights = {k: v.float() for k, v in model.state_dict.items()}
        TransformerNet(model.config).load_state_dict(weights)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:  # ValueError: a bad config field
        raise StyleFileError(f"{path}: weights do not match the stored architecture ({first_line(exc)})") from None
    # A diverged training run or a damaged copy: such a network paints every frame black.
    if not bool(torch.cat([w.reshape(-1) for w in weights.values()]).isfinite().all()):
        raise StyleFileError(f"{path}: weights contain NaN/Inf; retrain or restore it")
    return model
