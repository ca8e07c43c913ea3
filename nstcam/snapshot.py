"""Snapshots: one camera frame, stylized at full resolution, then refined by Gatys optimisation.

The fast network gives a good first guess; a few steps of Gatys optimisation against the style's
stored Gram targets (in the style file, so no painting is needed) pull the texture and colours
closer to the painting and the shapes back towards the camera frame. The loss weights derive
from the loss net's Gatys defaults with a gentler style weight (see `_loss_settings`); the layers
are those the style's targets were computed for. Three
PNGs are written with a timestamped name that never overwrites anything:

    20250131-142501_van_gogh_raw.png            the camera frame as captured
    20250131-142501_van_gogh_stylized.png       the fast network at full resolution
    20250131-142501_van_gogh_refined.png        after refinement (absent when cancelled)

Each is written atomically (temp file + rename): a full disk leaves a PNG absent, never
truncated, and the SnapshotError names the file and those kept.

Budget. On a CPU one forward+backward of EfficientNet-Lite0 at 1280x720 takes about a second,
so refining at full resolution would cost minutes. Instead the optimisation runs on a copy whose
short side is `refine_side` (360 px on CPU by default: ~4x fewer pixels than 720p) and the
*change* it makes is upsampled and added to the full-resolution stylized frame: the fine detail
of the full-resolution network output is kept and the refinement's texture and colour
corrections are carried over. On CUDA the default is full resolution. DEFAULT_STEPS (30) of
those take ~10 s on an idle 2-core CPU; on a busy one a step can cost several times as much, so a
time budget (45 s from the start of the snapshot) ends the refinement early, keeping its best
image, and a snapshot stays under a minute. No Qt here: the window runs `take_snapshot` on a
worker thread and passes `progress` / `should_stop`.
"""
from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from trainer.fileio import atomic_write_bytes

DEFAULT_LOSS_NET = "efficientnet-lite0"
# Optimiser steps; with the default refine_side that is ~10 s of an idle 2-core CPU for a 720p
# frame (one step at 640x360 costs ~0.55 CPU-seconds).
DEFAULT_STEPS = 30
# Seconds from the start of a snapshot after which refinement stops and keeps its best image so
# far (not a cancel): a snapshot then ends within about this long even on a slower or busy machine.
DEFAULT_TIME_BUDGET = 45.0
# Short side of the image the optimisation runs on (CPU); None = full resolution.
CPU_REFINE_SIDE = 360
AUTO = "auto"
# Style weight of the refinement relative to the loss net's Gatys default (see _loss_settings).
REFINE_STYLE_SCALE = 0.1

Progress = Callable[[int, int, Mapping[str, float]], None]


class SnapshotError(RuntimeError):
    """A snapshot could not be taken; the message says why and what to do."""


@dataclass(frozen=True)
class SnapshotResult:
    raw_path: Path
    stylized_path: Path
    refined_path: Path | None
    cancelled: bool
    seconds: float
    style_loss_before: float | None
    style_loss_after: float | None
    style: str = ""
    steps_done: int = 0
    refine_size: tuple[int, int] | None = None  # (w, h) the optimisation ran at
    out_of_time: bool = False  # refinement stopped at the time budget, before `steps`

    @property
    def best_path(self) -> Path:
        """The most finished image: refined when there is one, else the stylized frame."""
        return self.refined_path or self.stylized_path


# ----------------------------------------------------------------------------------------------
# Loss net cache: building EfficientNet-Lite0 and loading its weights takes a while, and the UI
# may take many snapshots.

_net_cache: dict[tuple[str, str], Any] = {}
_net_lock = threading.Lock()


def get_loss_net(name: str = DEFAULT_LOSS_NET, device: torch.device | str = "cpu"):
    """The frozen loss net `name` on `device`, built once per process and reused."""
    from trainer.lossnets import build_loss_net

    dev = torch.device(device)
    key = (name, str(dev))
    with _net_lock:
        net = _net_cache.get(key)
        if net is None:
            net = build_loss_net(name).to(dev)
            _net_cache[key] = net
        return net


def has_refine_targets(style_model, loss_net: str = DEFAULT_LOSS_NET) -> bool:
    """Whether `style_model` stores the Gram targets refinement with `loss_net` needs."""
    return bool(getattr(style_model, "style_targets", {}).get(loss_net))


def _targets_for(style_model, loss_net: str) -> dict[str, torch.Tensor]:
    targets = getattr(style_model, "style_targets", {}) or {}
    if not targets.get(loss_net):
        have = ", ".join(sorted(targets)) or "none"
        raise SnapshotError(
            f"style {style_model.name!r} has no Gram targets for the loss net {loss_net!r} "
            f"(it has: {have}), so its snapshots cannot be refined; retrain or re-export the style "
            f"with {loss_net} targets, or take the snapshot without refinement"
        )
    return targets[loss_net]


# ----------------------------------------------------------------------------------------------
# File naming


def _slug(text: str) -> str:
    """The style name as recordings spell it (van_gogh): letters, digits and underscores kept."""
    slug = re.sub(r"[^A-Za-z0-9_]+", "-", text).strip("-_").lower()
    return slug[:40] or "style"


_name_lock = threading.Lock()


def _write_png(path: Path, rgb: np.ndarray, saved: tuple[Path, ...] = (), overwrite: bool = False) -> None:
    """Write a PNG atomically: complete or absent, never truncated (a full disk). Never replaces
    an existing file unless `overwrite` (our own placeholder). `saved`: what the message says
    is kept when this one fails."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise SnapshotError(f"{path}: could not encode the image as PNG")
    try:
        atomic_write_bytes(path, buf.tobytes(), overwrite=overwrite)
    except FileExistsError:
        raise
    except OSError as exc:
        kept = f"kept {', '.join(p.name for p in saved)}" if saved else "nothing was saved"
        raise SnapshotError(f"could not write {path} ({exc.strerror or exc}); {kept}") from None


def _reserve_stem(out_dir: Path, style: str, when: datetime) -> str:
    """A file-name stem free for all three PNGs; reserves it by creating the raw file empty."""
    base = f"{when:%Y%m%d-%H%M%S}_{_slug(style)}"
    for i in range(1, 10_000):
        stem = base if i == 1 else f"{base}-{i}"
        paths = [out_dir / f"{stem}_{kind}.png" for kind in ("raw", "stylized", "refined")]
        if any(p.exists() for p in paths):
            continue
        try:
            paths[0].open("xb").close()
        except FileExistsError:
            continue
        return stem
    raise SnapshotError(f"{out_dir}: could not find a free snapshot file name")


# ----------------------------------------------------------------------------------------------


def refine_size_for(size_wh: tuple[int, int], refine_side: int | None) -> tuple[int, int]:
    """(w, h) with the short side scaled down to `refine_side` (never up)."""
    w, h = size_wh
    if refine_side is None or min(w, h) <= refine_side:
        return w, h
    scale = refine_side / min(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def _loss_settings(style_model, net, defaults) -> dict[str, Any]:
    """Loss weights and layers for refining with `net`.

    Weights: the net's Gatys defaults (content, tv) with the style weight scaled by
    REFINE_STYLE_SCALE. Those defaults are tuned for a full Gatys run from the content image; a
    short refinement that starts from an already stylized frame, with them, satisfies the Gram
    targets by painting colourful high-frequency noise over it (the stride-2 stem barely sees
    it), and so would the style's *training* weights (a feed-forward network cannot produce
    such noise, pixel optimisation can). A tenth of the style weight gives a clean result that
    still lowers the style loss ~3x and brings shapes back towards the camera frame (measured on
    the bundled styles, 720p frames refined at 640x360). Layers: those the style's targets were
    computed for (its metadata), else the net's defaults that the targets cover.
    """
    meta = getattr(style_model, "meta", {}) or {}
    trained_here = meta.get("loss_net") == net.name
    targets = (getattr(style_model, "style_targets", {}) or {}).get(net.name, {})
    settings: dict[str, Any] = {
        "content_weight": float(defaults.content),
        "style_weight": float(defaults.style) * REFINE_STYLE_SCALE,
        "tv_weight": float(defaults.tv),
    }
    layers = meta.get("style_layers") if trained_here else None
    if not (isinstance(layers, dict) and layers and set(layers) <= set(net.tap_index) & set(targets)):
        layers = {k: v for k, v in net.style_weights.items() if k in targets}
        if not layers:
            layers = {k: 1.0 for k in targets if k in net.tap_index}
    settings["style_layers"] = {str(k): float(v) for k, v in layers.items()}
    content_layer = meta.get("content_layer") if trained_here else None
    if isinstance(content_layer, str) and content_layer in net.tap_index:
        settings["content_layer"] = content_layer
    return settings


def _to_tensor(rgb: np.ndarray, device: torch.device) -> torch.Tensor:
    from trainer.images import rgb_array_to_tensor

    return rgb_array_to_tensor(rgb).to(device)


def _engine_style_name(engine, style_model, style: str | None) -> str | None:
    if style is not None:
        return style
    names = list(getattr(engine, "style_names", []) or [])
    name = getattr(style_model, "name", None)
    if name in names:
        return name
    return None  # the engine's current style


def take_snapshot(
    frame_bgr: np.ndarray,
    engine,
    style_model,
    out_dir: str | Path,
    *,
    steps: int = DEFAULT_STEPS,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    loss_net: str = DEFAULT_LOSS_NET,
    refine: bool = True,
    refine_side: int | None | str = AUTO,
    style: str | None = None,
    time_budget: float | None = DEFAULT_TIME_BUDGET,
) -> SnapshotResult:
    """Stylize `frame_bgr` at full resolution, refine it, and save raw/stylized/refined PNGs.

    `engine` is a StyleEngine holding `style_model` (its style `style`, default the model's
    name, else the engine's current style). `progress(step, total, losses)` is called after each
    optimiser step, `should_stop()` before each; when it returns True the refinement stops,
    nothing more is written and the result says `cancelled`. `refine=False` skips refinement
    (for styles without Gram targets). `time_budget` (seconds since the call began) ends the
    optimisation early, keeping its best image (`out_of_time`). Raises SnapshotError for a style
    that lacks the targets, or an unusable frame or folder.
    """
    t0 = time.perf_counter()
    stop = should_stop or (lambda: False)
    if frame_bgr is None or frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3 or frame_bgr.size == 0:
        raise SnapshotError("no camera frame to take a snapshot of")
    targets = _targets_for(style_model, loss_net) if refine else None
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SnapshotError(f"{out_dir}: cannot create the snapshot folder ({exc.strerror})") from None

    style_name = _engine_style_name(engine, style_model, style)
    stylized = engine.stylize(frame_bgr, style=style_name, size=None)
    h, w = frame_bgr.shape[:2]
    if stylized.shape[:2] != (h, w):
        stylized = cv2.resize(stylized, (w, h), interpolation=cv2.INTER_LINEAR)
    raw_rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)

    label = style_name or getattr(engine, "style", None) or getattr(style_model, "name", "style")
    with _name_lock:
        stem = _reserve_stem(out_dir, str(label), datetime.now())
    raw_path = out_dir / f"{stem}_raw.png"
    stylized_path = out_dir / f"{stem}_stylized.png"
    refined_path = out_dir / f"{stem}_refined.png"
    try:
        _write_png(raw_path, raw_rgb, overwrite=True)  # replaces the empty placeholder that reserved the name
    except BaseException:
        raw_path.unlink(missing_ok=True)
        raise
    _write_png(stylized_path, stylized, (raw_path,))

    def done(refined: Path | None, cancelled: bool, before=None, after=None, steps_done=0, size=None,
             out_of_time=False):
        return SnapshotResult(
            out_of_time=out_of_time,
            raw_path=raw_path,
            stylized_path=stylized_path,
            refined_path=refined,
            cancelled=cancelled,
            seconds=time.perf_counter() - t0,
            style_loss_before=before,
            style_loss_after=after,
            style=str(label),
            steps_done=steps_done,
            refine_size=size,
        )

    if not refine or steps <= 0:
        return done(None, False)
    if stop():
        return done(None, True)

    from trainer.gatys import refine as gatys_refine
    from trainer.lossnets import DEFAULT_WEIGHTS
    from trainer.perceptual import PerceptualLoss

    device = torch.device(str(getattr(engine, "device", "cpu")))
    if refine_side == AUTO:
        refine_side = None if device.type == "cuda" else CPU_REFINE_SIDE
    rw, rh = refine_size_for((w, h), refine_side)  # type: ignore[arg-type]
    scaled = (rw, rh) != (w, h)

    net = get_loss_net(loss_net, device)
    loss = PerceptualLoss(net, **_loss_settings(style_model, net, DEFAULT_WEIGHTS[net.name]))
    loss.set_style_targets(targets)

    def small(img: np.ndarray) -> np.ndarray:
        return cv2.resize(img, (rw, rh), interpolation=cv2.INTER_AREA) if scaled else img

    content_t = _to_tensor(small(raw_rgb), device)
    init_t = _to_tensor(small(stylized), device)
    if stop():
        return done(None, True, None, None, 0, (rw, rh))

    def on_step(step: int, total: int, losses: Mapping[str, float]) -> None:
        if progress is not None:
            progress(step, total, losses)

    deadline = None if time_budget is None else t0 + time_budget
    out_of_time = user_stop = False

    def stop_or_timeout() -> bool:
        nonlocal out_of_time, user_stop
        if stop():
            user_stop = True
            return True
        if deadline is not None and time.perf_counter() >= deadline:
            out_of_time = True
            return True
        return False

    result = gatys_refine(
        content_t, loss=loss, init=init_t, steps=steps, progress=on_step, should_stop=stop_or_timeout
    )
    cancelled = result.cancelled and user_stop
    # history[0] is the loss of the initial (stylized) image; result.loss that of the image
    # returned. Both at the refinement size, against the same targets and content.
    before = float(result.history[0]["style"]) if result.history else None
    if cancelled or result.steps_done == 0:
        return done(None, cancelled, before, None, result.steps_done, (rw, rh), out_of_time)
    refined_t = result.image.detach().to(device).clamp(0, 1)
    after = float(result.loss["style"]) if "style" in result.loss else None

    from trainer.images import tensor_to_rgb_array

    if scaled:
        # Carry the refinement's change over to full resolution; keep the full-res detail.
        delta = (refined_t - init_t).float()
        delta = torch.nn.functional.interpolate(delta, size=(h, w), mode="bilinear", align_corners=False)
        full = _to_tensor(stylized, device) + delta
        refined_rgb = tensor_to_rgb_array(full.clamp(0, 1))
    else:
        refined_rgb = tensor_to_rgb_array(refined_t)
    try:
        _write_png(refined_path, refined_rgb, (raw_path, stylized_path))
    except FileExistsError:
        # Someone else created our refined name meanwhile: take a fresh stem for it.
        with _name_lock:
            stem2 = _reserve_stem(out_dir, str(label), datetime.now())
        (out_dir / f"{stem2}_raw.png").unlink()
        refined_path = out_dir / f"{stem2}_refined.png"
        _write_png(refined_path, refined_rgb, (raw_path, stylized_path))
    return done(refined_path, False, before, after, result.steps_done, (rw, rh), out_of_time)
