"""Measurement: each style's losses under its own objective, for its network, the Gatys bar and
the photograph, plus the figures the losses do not show (`trainer.metrics`)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from trainer.metrics import colour_distance, edge_correlation, pan_warp_error, strength
from trainer.perceptual import PerceptualLoss
from trainer.report.inputs import StyleVariant

TERMS = ("content", "style", "tv", "total")
QUALITY = ("edge", "colour", "strength", "pan1", "pan2")


@torch.no_grad()
def measure(loss: PerceptualLoss, image: torch.Tensor, content_target: torch.Tensor) -> dict[str, float]:
    """Weighted content/style/tv terms and their total for `image` (1, 3, H, W) in [0, 1]."""
    device = loss.net.mean.device
    return loss(image.to(device, torch.float32), content_target).as_floats()


def quality(output: torch.Tensor, photo: torch.Tensor, painting: torch.Tensor | None,
            net: torch.nn.Module) -> dict[str, float | None]:
    """The figures the losses do not give (see `trainer.report`), for one stylized photograph."""
    return {
        "edge": edge_correlation(output, photo, blur_sigma=0.0),  # unblurred: the published figure
        "colour": colour_distance(output, painting) if painting is not None else None,
        "strength": strength(output, photo),
        "pan1": pan_warp_error(net, photo, 1),
        "pan2": pan_warp_error(net, photo, 2),
    }


def ratio(fast: float | None, bar: float | None) -> float | None:
    if fast is None or bar is None or not math.isfinite(fast) or not math.isfinite(bar) or bar <= 0:
        return None
    return fast / bar


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


@dataclass
class StyleResult:
    style: StyleVariant
    skipped: str = ""  # why nothing was measured, if so
    per_image: list[dict[str, Any]] = field(default_factory=list)
    old: StyleVariant | None = None  # the same style from --compare

    def means(self, which: str) -> dict[str, float | None]:
        return {t: _mean([r[which][t] for r in self.per_image if r.get(which)]) for t in TERMS}

    def quality(self, which: str) -> dict[str, float | None]:
        rows = [r[which] for r in self.per_image if r.get(which)]
        return {k: _mean([q[k] for q in rows if q.get(k) is not None]) for k in QUALITY}

    def to_json(self) -> dict[str, Any]:
        meta = self.style.meta
        fast, gatys, photo = self.means("fast"), self.means("gatys"), self.means("photo")
        keys = ("loss_net", "content_weight", "style_weight", "tv_weight", "style_layers",
                "content_layer", "image_size", "style_size", "batch_size", "steps",
                "training_seconds", "images_per_second", "device", "architecture")
        return {
            "name": self.style.name,
            "variant": self.style.variant,
            "title": meta.get("title"),
            "file": self.style.path.name,
            **{k: meta.get(k) for k in keys},
            "measured": not self.skipped,
            "skipped": self.skipped or None,
            "mean": {"fast": fast, "gatys": gatys, "photo": photo},
            "compared_with": str(self.old.path) if self.old else None,
            "mean_old": self.means("old") if self.old else None,
            "quality": {"fast": self.quality("quality"), "old": self.quality("quality_old") if self.old else None,
                        "photo_colour": _mean([r["photo_colour"] for r in self.per_image
                                               if r.get("photo_colour") is not None])},
            "ratio": {t: ratio(fast[t], gatys[t]) for t in ("content", "style", "total")},
            "images": self.per_image,
        }
