"""The reproducible quality report of a folder of styles: `python -m trainer.report`.

For every style file (each variant) and every evaluation photograph it

* stylises the photograph with the style's fast network (the app's output, clamped to [0, 1]);
* runs Gatys et al.'s optimisation on the same photograph (L-BFGS, starting from the photograph)
  against the same objective the network was trained on: the style's own loss net, its stored
  Gram targets, style layers, content layer and content/style/tv weights, all from the file;
* measures content and style loss of both results with that objective (weighted terms, as
  `PerceptualLoss` returns them), and of the untouched photograph for scale;
* measures what the losses do not show: the edge correlation of the network's output with the
  photograph (structure kept), the colour distance to the painting (palette taken), the strength
  (mean change from the photograph) and the flicker of a 1 and a 2 px camera pan.

With `--compare OLD_DIR` every style is also run from the same-named file in OLD_DIR (an earlier
recipe): its losses under the new file's objective and the same figures, side by side, and the
contact sheet shows old and new next to each other.

The optimisation is the bar: a ratio fast/Gatys near 1 means the network reaches what a few
seconds of per-image optimisation reach, well above 1 means it falls short. Outputs
(in --out, default docs/): `contact_sheet.png` (photographs x styles, fast networks),
`gatys_sheet.png` (the same grid with the Gatys results), `quality_report.md` and
`quality_report.json`. Everything is deterministic for a given machine, inputs and --threads
(the thread count changes the float rounding, which L-BFGS amplifies in the last digits) except
the timings in the JSON.

This module reads style files straight from a folder (its `manifest.json` gives the order when
there is one); it must not import the app (`nstcam`).
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from trainer.cliargs import int_at_least
from trainer.fileio import atomic_write_bytes
from trainer.devices import DEVICE_CHOICES, resolve_device
from trainer.gatys import refine
from trainer.images import ImageLoadError, load_image, pil_to_tensor, tensor_to_pil
from trainer.lossnets import DEFAULT_WEIGHTS, LossNetUnavailable, build_loss_net
from trainer.lossnets.base import LossNet
from trainer.perceptual import PerceptualLoss
from trainer.stylefile import StyleFileError, StyleModel, load_style

logger = logging.getLogger(__name__)

# Two faces and a drawing, where styles fail most visibly (faces smeared, line art lost), plus
# the two photographs the original authors' reference outputs show (amber: a carved doorway).
DEFAULT_IMAGES = ("face.jpg", "foreman.jpg", "amber.jpg", "comic.jpg", "chicago.jpg")
DEFAULT_SIZE = 256
# From the photograph at 256 px, L-BFGS's total loss at 200 steps is within a few per cent of
# its value at 400 (style alone within ~12%; at 100 steps it is still 25-60% higher), and the
# default report (6 styles x 5 photographs) takes about 5 minutes on one CPU thread.
DEFAULT_GATYS_STEPS = 200
VARIANT_ORDER = ("light", "full")
MANIFEST = "manifest.json"
TERMS = ("content", "style", "tv", "total")
QUALITY = ("edge", "colour", "strength", "pan1", "pan2")

# Contact-sheet layout, in pixels. A sheet with R rows and C columns (the original plus one per
# style variant), each cell a CELL x CELL box, is `sheet_size(R, C, CELL)`.
PAD = 8
LABEL_WIDTH = 112
HEADER_HEIGHT = 40
BACKGROUND = (255, 255, 255)
LETTERBOX = (238, 238, 238)
INK = (20, 20, 20)


# ----------------------------------------------------------------------------------------------
# Inputs


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


# ----------------------------------------------------------------------------------------------
# Measurement


@torch.no_grad()
def measure(loss: PerceptualLoss, image: torch.Tensor, content_target: torch.Tensor) -> dict[str, float]:
    """Weighted content/style/tv terms and their total for `image` (1, 3, H, W) in [0, 1]."""
    device = loss.net.mean.device
    return loss(image.to(device, torch.float32), content_target).as_floats()


@torch.inference_mode()
def stylize(net: torch.nn.Module, content: torch.Tensor) -> torch.Tensor:
    """The network's output as the app shows it: clamped to [0, 1], on the CPU."""
    device = next(net.parameters()).device
    return net(content.to(device)).float().clamp(0, 1).cpu().clone()


def _luma(img: torch.Tensor) -> torch.Tensor:
    """(1, 3, H, W) RGB -> (1, 1, H, W) Rec. 601 luma."""
    return (img * torch.tensor([0.299, 0.587, 0.114], device=img.device).view(1, 3, 1, 1)).sum(1, keepdim=True)


def _gradient_magnitude(img: torch.Tensor) -> torch.Tensor:
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=img.device)
    kernels = torch.stack([sobel, sobel.t()]).unsqueeze(1)
    g = torch.nn.functional.conv2d(_luma(img.float()), kernels)
    return g.pow(2).sum(1).sqrt()


def edge_correlation(output: torch.Tensor, photo: torch.Tensor) -> float:
    """Pearson correlation of the luma gradient magnitudes of `output` and `photo` (1, 3, H, W).

    1: every edge of the photo is where the output has one, in proportion; near 0: the photo's
    structure is gone (blobs, or texture unrelated to the photo).
    """
    a, b = _gradient_magnitude(output).flatten(), _gradient_magnitude(photo).flatten()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12))


def colour_distance(image: torch.Tensor, painting: torch.Tensor, quantiles: int = 256) -> float:
    """How far the colours of `image` are from the painting's, on the 0-255 scale.

    The mean over R, G and B of the 1-D Wasserstein distance between the two images' value
    distributions (compared quantile by quantile, so the sizes may differ): 0 = the painting's
    palette in the painting's proportions.
    """
    q = torch.linspace(0, 1, quantiles)
    a = image.float().flatten(2)[0]
    b = painting.float().flatten(2)[0]
    return float((torch.quantile(a, q, dim=1) - torch.quantile(b, q, dim=1)).abs().mean() * 255)


def pan_warp_error(net: torch.nn.Module, photo: torch.Tensor, shift: int) -> float:
    """Flicker of a camera pan by `shift` px: stylize two crops `shift` px apart (diagonally) and
    compare them where they show the same scene; mean absolute difference on the 0-255 scale,
    interior only. 0 = the painted texture moves with the scene."""
    h, w = photo.shape[-2:]
    a = stylize(net, photo[..., : h - shift, : w - shift])
    b = stylize(net, photo[..., shift:, shift:])
    m = 8  # the network's borders see reflection padding, not the scene
    return float((a[..., shift + m: -m, shift + m: -m] - b[..., m: -shift - m, m: -shift - m]).abs().mean() * 255)


def quality(output: torch.Tensor, photo: torch.Tensor, painting: torch.Tensor | None,
            net: torch.nn.Module) -> dict[str, float | None]:
    """The figures the losses do not give (see the module docstring), for one stylized photograph."""
    return {
        "edge": edge_correlation(output, photo),
        "colour": colour_distance(output, painting) if painting is not None else None,
        "strength": float((output - photo).abs().mean() * 255),
        "pan1": pan_warp_error(net, photo, 1),
        "pan2": pan_warp_error(net, photo, 2),
    }


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


def _ratio(fast: float | None, bar: float | None) -> float | None:
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
            "ratio": {t: _ratio(fast[t], gatys[t]) for t in ("content", "style", "total")},
            "images": self.per_image,
        }


# ----------------------------------------------------------------------------------------------
# Contact sheets


def sheet_size(rows: int, cols: int, cell: int) -> tuple[int, int]:
    """(width, height) of a sheet with `rows` x `cols` cells of `cell` x `cell` pixels."""
    return (LABEL_WIDTH + PAD + cols * (cell + PAD), HEADER_HEIGHT + PAD + rows * (cell + PAD))


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # old Pillow or no FreeType: the bitmap font
        return ImageFont.load_default()


def _fit_text(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _fit_cell(img: Image.Image, cell: int) -> Image.Image:
    """`img` scaled to fit a cell x cell box (aspect kept), centred on a grey letterbox."""
    scale = min(cell / img.width, cell / img.height)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    thumb = img if size == img.size else img.resize(size, Image.Resampling.LANCZOS)
    box = Image.new("RGB", (cell, cell), LETTERBOX)
    box.paste(thumb, ((cell - size[0]) // 2, (cell - size[1]) // 2))
    return box


def contact_sheet(
    cells: Sequence[Sequence[Image.Image | None]],
    row_labels: Sequence[str],
    col_labels: Sequence[tuple[str, str]],
    cell: int,
) -> Image.Image:
    """A labelled grid; `cells[r][c]` is an image or None (left blank), `col_labels` two lines each."""
    rows, cols = len(row_labels), len(col_labels)
    sheet = Image.new("RGB", sheet_size(rows, cols, cell), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font, small = _font(14), _font(12)
    for c, (line1, line2) in enumerate(col_labels):
        x = LABEL_WIDTH + PAD + c * (cell + PAD)
        draw.text((x, 4), _fit_text(draw, line1, font, cell), fill=INK, font=font)
        draw.text((x, 22), _fit_text(draw, line2, small, cell), fill=INK, font=small)
    for r, label in enumerate(row_labels):
        y = HEADER_HEIGHT + PAD + r * (cell + PAD)
        draw.text((PAD, y + cell // 2 - 7), _fit_text(draw, label, font, LABEL_WIDTH - PAD), fill=INK,
                  font=font)
        for c in range(cols):
            img = cells[r][c] if c < len(cells[r]) else None
            if img is not None:
                sheet.paste(_fit_cell(img, cell), (LABEL_WIDTH + PAD + c * (cell + PAD), y))
    return sheet


# ----------------------------------------------------------------------------------------------
# Report files


def _fmt(value: float | None, spec: str = ".3g") -> str:
    return "–" if value is None else format(value, spec)


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)) or seconds <= 0:
        return "–"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def variant_costs(styles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each style measured in both variants: the light network's mean losses over the full's.

    Both variants share the objective (same recipe), so the ratios are what the cheaper network
    costs in quality; > 1 = the light one is worse.
    """
    by_name: dict[str, dict[str, dict[str, Any]]] = {}
    for st in styles:
        if not st["skipped"]:
            by_name.setdefault(st["name"], {})[st["variant"]] = st
    rows = []
    for name, variants in by_name.items():
        light, full = variants.get("light"), variants.get("full")
        if light is None or full is None:
            continue
        lm, fm = light["mean"]["fast"], full["mean"]["fast"]
        rows.append({
            "name": name,
            "light_architecture": light.get("architecture"),
            "full_architecture": full.get("architecture"),
            **{f"{t}_light": lm[t] for t in ("content", "style", "total")},
            **{f"{t}_full": fm[t] for t in ("content", "style", "total")},
            **{f"{t}_ratio": _ratio(lm[t], fm[t]) for t in ("content", "style", "total")},
        })
    return rows


def _arch(a: Any) -> str:
    if not isinstance(a, dict):
        return "–"
    text = f"w{a.get('width')}/r{a.get('res_blocks')}/k{a.get('outer_kernel')}"
    return text + ("/sep" if a.get("separable") else "")


def markdown_report(report: dict[str, Any]) -> str:
    s = report["settings"]
    lines = [
        "# Style quality report",
        "",
        f"Generated by `python -m trainer.report` from `{s['styles_dir']}` on "
        f"{len(s['images'])} evaluation photographs ({', '.join(s['images'])}) at {s['size']} px "
        f"(short side); Gatys baseline: {s['gatys_steps']} L-BFGS steps from the photograph.",
        "",
        "Losses are the weighted terms of each style's own training objective (its loss net, "
        "stored Gram targets, layers and content/style weights), averaged over the photographs. "
        "*fast*: the style's network; *gatys*: per-image optimisation of the same objective, the "
        "bar; *ratio* = fast / gatys (ratio of the means; 1 = as good as the optimisation, > 1 = "
        "worse). Gatys starts from the photograph, whose content loss is 0, so its content loss is "
        "small by construction and the content ratio is large; the style and total ratios are the "
        "fair comparison. *style (photo)*: the untouched photograph's style loss, for scale. "
        "Training time and images/s come from the style file.",
        "",
        "| style | variant | loss net | steps | training time | img/s | content fast | "
        "content gatys | ratio | style fast | style gatys | ratio | total ratio | style (photo) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for st in report["styles"]:
        fast, gatys, photo = st["mean"]["fast"], st["mean"]["gatys"], st["mean"]["photo"]
        ratio = st["ratio"]
        ips = st.get("images_per_second")
        lines.append(
            f"| {st['name']} | {st['variant']} | {st.get('loss_net') or '–'} | "
            f"{st.get('steps') if st.get('steps') is not None else '–'} | "
            f"{_duration(st.get('training_seconds'))} | "
            f"{_fmt(ips, '.1f') if isinstance(ips, (int, float)) else '–'} | "
            f"{_fmt(fast['content'])} | {_fmt(gatys['content'])} | {_fmt(ratio['content'], '.2f')} | "
            f"{_fmt(fast['style'])} | {_fmt(gatys['style'])} | {_fmt(ratio['style'], '.2f')} | "
            f"{_fmt(ratio['total'], '.2f')} | {_fmt(photo['style'])} |"
        )
    skipped = [st for st in report["styles"] if st["skipped"]]
    if skipped:
        lines += ["", "Not measured (shown on the contact sheet only):", ""]
        lines += [f"- {st['name']} ({st['variant']}): {st['skipped']}" for st in skipped]
    measured = [st for st in report["styles"] if not st["skipped"]]
    if measured:
        names = s["images"]
        lines += [
            "",
            "## Style loss ratio fast / gatys per photograph",
            "",
            "| style | variant | " + " | ".join(names) + " |",
            "|---|---|" + "---:|" * len(names),
        ]
        for st in measured:
            by_image = {r["image"]: r["ratio"]["style"] for r in st["images"]}
            lines.append(f"| {st['name']} | {st['variant']} | "
                         + " | ".join(_fmt(by_image.get(n), ".2f") for n in names) + " |")
    costs = report.get("variant_costs") or []
    if costs:
        lines += [
            "",
            "## Light (CPU) variant against the full network, same style and objective",
            "",
            "Mean weighted losses of each network's output over the photographs; *ratio* = light / "
            "full (> 1: the light network is worse by that factor).",
            "",
            "| style | light | full | content light | content full | ratio | style light | "
            "style full | ratio | total ratio |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for c in costs:
            lines.append(
                f"| {c['name']} | {_arch(c['light_architecture'])} | {_arch(c['full_architecture'])} | "
                f"{_fmt(c['content_light'])} | {_fmt(c['content_full'])} | {_fmt(c['content_ratio'], '.2f')} | "
                f"{_fmt(c['style_light'])} | {_fmt(c['style_full'])} | {_fmt(c['style_ratio'], '.2f')} | "
                f"{_fmt(c['total_ratio'], '.2f')} |"
            )
    lines += _quality_section(report)
    lines += [
        "",
        "## Sheets",
        "",
        "Fast networks (first column: the photograph"
        + ("; each style's earlier network (*old*) next to its new one" if s.get("compare_dir") else "") + "):",
        "",
        "![contact sheet](contact_sheet.png)",
        "",
        f"Gatys, {s['gatys_steps']} steps, same objective:",
        "",
        "![gatys sheet](gatys_sheet.png)",
        "",
    ]
    return "\n".join(lines)


def _quality_section(report: dict[str, Any]) -> list[str]:
    """Markdown: structure, palette, strength and pan flicker per style; old against new if compared."""
    measured = [st for st in report["styles"] if not st["skipped"]]
    if not measured:
        return []
    compare = report["settings"].get("compare_dir")

    def pair(st: dict[str, Any], key: str, spec: str) -> str:
        new = st["quality"]["fast"][key]
        old = (st["quality"]["old"] or {}).get(key) if st["quality"]["old"] else None
        return f"{_fmt(old, spec)} → {_fmt(new, spec)}" if compare and st["quality"]["old"] else _fmt(new, spec)

    lines = [
        "",
        "## Structure, palette and stability" + (f" (old `{compare}` → new)" if compare else ""),
        "",
        "Means over the photographs. *edge*: correlation of the output's luma gradient magnitude "
        "with the photograph's (1 = all its edges kept). *colour*: mean 1-D Wasserstein distance of "
        "the R, G and B values to the painting's, 0-255 (the photograph's own distance for scale; "
        "lower = closer to the painting's palette). *strength*: mean |output - photograph|, 0-255. "
        "*pan 1 px / 2 px*: flicker of a camera pan: mean |stylized shifted crop - shifted "
        "stylized crop| over the interior, 0-255 (0 = the painted texture moves with the scene; "
        "the network's total stride is 4, so offsets below it alias).",
        "",
        "| style | variant | edge | colour | colour (photo) | strength | pan 1 px | pan 2 px |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for st in measured:
        lines.append(
            f"| {st['name']} | {st['variant']} | {pair(st, 'edge', '.2f')} | {pair(st, 'colour', '.1f')} | "
            f"{_fmt(st['quality']['photo_colour'], '.1f')} | {pair(st, 'strength', '.1f')} | "
            f"{pair(st, 'pan1', '.1f')} | {pair(st, 'pan2', '.1f')} |"
        )
    compared = [st for st in measured if st.get("mean_old")]
    if compared:
        lines += [
            "",
            "## Losses, old network against new, under the new style file's objective",
            "",
            "Weighted content and style terms (the new recipe's weights and layers), means over the "
            "photographs; lower is better on each, the recipe trades one against the other.",
            "",
            "| style | variant | content old | content new | style old | style new | total old | total new |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for st in compared:
            o, n = st["mean_old"], st["mean"]["fast"]
            lines.append(f"| {st['name']} | {st['variant']} | {_fmt(o['content'])} | {_fmt(n['content'])} | "
                         f"{_fmt(o['style'])} | {_fmt(n['style'])} | {_fmt(o['total'])} | {_fmt(n['total'])} |")
    return lines


# ----------------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m trainer.report",
        description="Quality report of a folder of styles: contact sheets of the fast networks "
        "and of Gatys optimisation on evaluation photographs, and each style's content and style "
        "loss relative to Gatys under the style's own training objective.",
    )
    p.add_argument("--styles", type=Path, default=Path("styles"), metavar="DIR",
                   help="folder of style files (*.pt; manifest.json orders them) (default: styles)")
    p.add_argument("--eval", type=Path, default=Path("../shared/data/eval"), metavar="DIR",
                   help="folder of evaluation photographs (default: ../shared/data/eval)")
    p.add_argument("--images", nargs="+", default=list(DEFAULT_IMAGES), metavar="IMAGE",
                   help="photographs, as names in --eval or as paths "
                   f"(default: {' '.join(DEFAULT_IMAGES)})")
    p.add_argument("--size", type=int_at_least(1), default=DEFAULT_SIZE, metavar="N",
                   help=f"resize photographs so their short side is N pixels; also the sheet's "
                   f"cell size (default: {DEFAULT_SIZE})")
    p.add_argument("--gatys-steps", type=int_at_least(1), default=DEFAULT_GATYS_STEPS, metavar="N",
                   help=f"L-BFGS steps of the Gatys baseline per style and photograph "
                   f"(default: {DEFAULT_GATYS_STEPS})")
    p.add_argument("--out", type=Path, default=Path("docs"), metavar="DIR",
                   help="where contact_sheet.png, gatys_sheet.png, quality_report.md and "
                   "quality_report.json go (default: docs)")
    p.add_argument("--device", default="auto", metavar="|".join(DEVICE_CHOICES),
                   help="where to compute; auto = cuda if available, else cpu (default: auto)")
    p.add_argument("--threads", type=int_at_least(1), default=1, metavar="N",
                   help="torch CPU threads (default: 1: the same numbers run after run, and "
                   "immune to the 10-100x slowdown of several threads on a busy CPU; more is "
                   "faster on idle cores)")
    p.add_argument("--vgg-weights", type=Path, default=None, metavar="PATH",
                   help="VGG19 state-dict file, for styles trained with the vgg19 loss net")
    p.add_argument("--paintings", type=Path, default=Path("../shared/data/styles"), metavar="DIR",
                   help="folder holding the paintings (by the file name each style file records), for "
                   "the colour distance; a painting not found there is left out (default: "
                   "../shared/data/styles)")
    p.add_argument("--compare", type=Path, default=None, metavar="OLD_DIR",
                   help="a folder of earlier style files to set side by side with --styles (same name "
                   "and variant), e.g. the previous pack")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    def fail(message: str) -> int:
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        return 2

    if not args.styles.is_dir():
        return fail(f"--styles {args.styles}: no such folder")
    styles, problems = discover_styles(args.styles)
    for problem in problems:
        logger.warning("skipping style file: %s", problem)
    if not styles:
        return fail(f"--styles {args.styles}: no loadable style files (*.pt)")
    if args.compare is not None:
        if not args.compare.is_dir():
            return fail(f"--compare {args.compare}: no such folder")
        olds, problems = discover_styles(args.compare)
        for problem in problems:
            logger.warning("skipping style file to compare: %s", problem)
        args.olds = {(o.name, o.variant): o for o in olds}
    else:
        args.olds = {}
    if not args.eval.is_dir() and any("/" not in n and "\\" not in n for n in args.images):
        return fail(f"--eval {args.eval}: no such folder")
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        return fail(str(exc))
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run(args, styles, device, fail, parser.prog)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace, styles: list[StyleVariant], device: torch.device, fail,
         prog: str) -> int:
    photos: list[tuple[str, torch.Tensor]] = []
    for path in resolve_images(args.images, args.eval):
        try:
            photos.append((path.stem, pil_to_tensor(load_image(path, args.size))))
        except ImageLoadError as exc:
            return fail(str(exc))
    names = [name for name, _ in photos]
    if len(set(names)) != len(names):
        return fail(f"--images: two photographs share a name ({', '.join(names)})")

    start = time.perf_counter()
    nets = LossNetCache(device, args.vgg_weights)
    results: list[StyleResult] = []
    fast_cells: list[list[Image.Image | None]] = [[tensor_to_pil(t)] for _, t in photos]
    gatys_cells: list[list[Image.Image | None]] = [[tensor_to_pil(t)] for _, t in photos]
    logger.info("%d style files x %d photographs at %d px on %s, Gatys %d steps",
                len(styles), len(photos), args.size, device, args.gatys_steps)
    bar = tqdm(total=len(styles) * len(photos), unit="image", dynamic_ncols=True)
    try:
        for style in styles:
            net = style.model.build(device)
            loss, why = style_objective(style, nets)
            old = args.olds.get((style.name, style.variant))
            old_net = old.model.build(device) if old else None
            painting = find_painting(style, args.paintings, args.size)
            result = StyleResult(style, skipped=why, old=old)
            if why:
                logger.warning("%s: not measured: %s", style.label, why)
            for row, (image_name, photo) in enumerate(photos):
                bar.set_description(f"{style.label} {image_name}")
                t0 = time.perf_counter()
                fast = stylize(net, photo)
                fast_seconds = time.perf_counter() - t0
                if old_net is not None:
                    old_out = stylize(old_net, photo)
                    fast_cells[row].append(tensor_to_pil(old_out))
                fast_cells[row].append(tensor_to_pil(fast))
                if loss is None:
                    gatys_cells[row].append(None)
                    bar.update()
                    continue
                target = loss.content_features(photo.to(device))
                gatys = refine(photo, loss=loss, init="content", steps=args.gatys_steps,
                               optimizer="lbfgs")
                gatys_cells[row].append(tensor_to_pil(gatys.image))
                entry = {
                    "image": image_name,
                    "width": int(photo.shape[-1]),
                    "height": int(photo.shape[-2]),
                    "fast": measure(loss, fast, target),
                    "gatys": measure(loss, gatys.image, target),
                    "photo": measure(loss, photo, target),
                    "fast_seconds": round(fast_seconds, 4),
                    "gatys_seconds": round(gatys.seconds, 3),
                    "quality": quality(fast, photo, painting, net),
                    "photo_colour": colour_distance(photo, painting) if painting is not None else None,
                }
                if old_net is not None:
                    entry["old"] = measure(loss, old_out, target)
                    entry["quality_old"] = quality(old_out, photo, painting, old_net)
                entry["ratio"] = {t: _ratio(entry["fast"][t], entry["gatys"][t])
                                  for t in ("content", "style", "total")}
                result.per_image.append(entry)
                bar.set_postfix(style_ratio=_fmt(entry["ratio"]["style"], ".2f"), refresh=False)
                bar.update()
            results.append(result)
            if not result.skipped:
                m = result.to_json()
                logger.info("%s: content fast/gatys %s, style fast/gatys %s", style.label,
                            _fmt(m["ratio"]["content"], ".2f"), _fmt(m["ratio"]["style"], ".2f"))
    except KeyboardInterrupt:
        bar.close()
        print(f"{prog}: aborted", file=sys.stderr)
        return 130
    bar.close()
    seconds = time.perf_counter() - start

    args.out.mkdir(parents=True, exist_ok=True)
    col_labels = [("original", f"{args.size} px")]
    for style in styles:
        title = str(style.meta.get("title") or "")
        if (style.name, style.variant) in args.olds:
            col_labels += [(f"{style.label} old", title), (f"{style.label} new", title)]
        else:
            col_labels.append((style.label, title))
    _save_png(contact_sheet(fast_cells, names, col_labels, args.size), args.out / "contact_sheet.png")
    gatys_labels = [("original", f"{args.size} px")] + [
        (f"{s.label} gatys", f"{args.gatys_steps} L-BFGS steps") for s in styles]
    _save_png(contact_sheet(gatys_cells, names, gatys_labels, args.size), args.out / "gatys_sheet.png")
    report = {
        "settings": {
            "styles_dir": str(args.styles),
            "eval_dir": str(args.eval),
            "images": names,
            "size": args.size,
            "gatys_steps": args.gatys_steps,
            "gatys_optimizer": "lbfgs",
            "gatys_init": "content",
            "device": str(device),
            "torch_version": str(torch.__version__),
            "threads": args.threads,
            "compare_dir": str(args.compare) if args.compare else None,
            "paintings_dir": str(args.paintings),
        },
        "seconds": round(seconds, 1),
        "styles": [r.to_json() for r in results],
    }
    report["variant_costs"] = variant_costs(report["styles"])
    atomic_write_bytes(args.out / "quality_report.json", (json.dumps(report, indent=2) + "\n").encode())
    atomic_write_bytes(args.out / "quality_report.md", markdown_report(report).encode())
    logger.info("wrote %s/{contact_sheet.png, gatys_sheet.png, quality_report.md, "
                "quality_report.json} in %.0f s", args.out, seconds)
    return 0


def _save_png(img: Image.Image, path: Path) -> None:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


if __name__ == "__main__":
    raise SystemExit(main())
