"""The report's inputs: the style files of a folder, the evaluation photographs, the paintings,
and the objective each style was trained on, rebuilt from its file."""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trainer.images import ImageLoadError, load_image, pil_to_tensor
from trainer.lossnets import DEFAULT_WEIGHTS, LossNetUnavailable, build_loss_net
from trainer.lossnets.base import LossNet
from trainer.perceptual import PerceptualLoss
from trainer.stylefile import StyleFileError, StyleModel, load_style

logger = logging.getLogger("trainer.report")

VARIANT_ORDER = ("light", "full")
MANIFEST = "manifest.json"


@dataclass
class StyleVariant:
    """One style file: a (name, variant) column of the report."""

    path: Path
    model: StyleModel
    name: str
    variant: str

    @property
    def meta(self) -> dict[str, Any]:
        return self.model.meta

    @property
    def label(self) -> str:
        return f"{self.name} ({self.variant})"


def discover_styles(folder: Path) -> tuple[list[StyleVariant], list[str]]:
    """The loadable style files in `folder`, in manifest order (then by name), light before full.

    Returns the styles and one message per file that could not be loaded (those are skipped).
    """
    order: dict[str, int] = {}
    manifest = folder / MANIFEST
    if manifest.is_file():
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
            items = data.get("styles", []) if isinstance(data, dict) else []
            for item in items if isinstance(items, list) else []:
                if isinstance(item, dict) and item.get("name"):
                    order.setdefault(str(item["name"]), len(order))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            logger.warning("%s: unreadable manifest, ordering styles by name (%s)", manifest, exc)
    found: list[StyleVariant] = []
    problems: list[str] = []
    for path in sorted(folder.glob("*.pt")):
        try:
            model = load_style(path)
        except StyleFileError as exc:
            problems.append(str(exc))
            continue
        name = str(model.meta.get("name") or path.stem)
        variant = str(model.meta.get("variant") or "full")
        found.append(StyleVariant(path, model, name, variant))
    found.sort(key=lambda s: (
        order.get(s.name, len(order)), s.name,
        VARIANT_ORDER.index(s.variant) if s.variant in VARIANT_ORDER else len(VARIANT_ORDER),
        s.path.name,
    ))
    return found, problems


def resolve_images(names: Sequence[str], eval_dir: Path) -> list[Path]:
    """Paths of the evaluation images: a bare name is looked up in `eval_dir`, a path (one with a
    folder part, e.g. ./mine.jpg) is taken as is."""
    paths = []
    for name in names:
        bare = "/" not in name and "\\" not in name
        paths.append(eval_dir / name if bare else Path(name))
    return paths


class LossNetCache:
    """Each loss net is built (and its weights read) once, however many styles use it."""

    def __init__(self, device: torch.device, vgg_weights: Path | None = None) -> None:
        self.device = device
        self.vgg_weights = vgg_weights
        self._nets: dict[str, LossNet | LossNetUnavailable] = {}

    def get(self, name: str) -> LossNet:
        if name not in self._nets:
            try:
                self._nets[name] = build_loss_net(name, self.vgg_weights).to(self.device)
            except LossNetUnavailable as exc:
                self._nets[name] = exc
        net = self._nets[name]
        if isinstance(net, LossNetUnavailable):
            raise net
        return net


def style_objective(style: StyleVariant, nets: LossNetCache) -> tuple[PerceptualLoss | None, str]:
    """The objective `style` was trained on, rebuilt from its file; (None, why) if impossible."""
    meta, targets = style.meta, style.model.style_targets
    loss_net = meta.get("loss_net")
    if not loss_net:
        if len(targets) != 1:
            return None, "the file names no loss net"
        loss_net = next(iter(targets))
    loss_net = str(loss_net)
    if loss_net not in targets:
        return None, f"the file holds no style targets for its loss net {loss_net}"
    try:
        net = nets.get(loss_net)
    except (LossNetUnavailable, ValueError) as exc:
        return None, f"loss net {loss_net} unavailable ({exc})"
    defaults = DEFAULT_WEIGHTS.get(net.name)

    def weight(key: str, fallback: float) -> float:
        value = meta.get(key)
        return float(value) if isinstance(value, (int, float)) else fallback

    layers = meta.get("style_layers")
    try:
        loss = PerceptualLoss(
            net,
            content_weight=weight("content_weight", defaults.content if defaults else 1.0),
            style_weight=weight("style_weight", defaults.style if defaults else 1.0),
            tv_weight=weight("tv_weight", defaults.tv if defaults else 0.0),
            style_layers={str(k): float(v) for k, v in layers.items()} if isinstance(layers, dict) else None,
            content_layer=str(meta["content_layer"]) if meta.get("content_layer") else None,
            smoothing=weight("smoothing", 0.0),  # the stored targets are Grams of smoothed features then
        )
        loss.set_style_targets(targets[loss_net])
    except ValueError as exc:
        return None, str(exc)
    return loss, ""


def find_painting(style: StyleVariant, folder: Path, size: int) -> torch.Tensor | None:
    """The style's painting from `folder` (by the file name the style file records), short side
    `size`; None if it is not there (colour distance is then not measured)."""
    name = style.meta.get("style_image")
    if not name:
        return None
    try:
        return pil_to_tensor(load_image(folder / str(name), size))
    except ImageLoadError:
        return None
