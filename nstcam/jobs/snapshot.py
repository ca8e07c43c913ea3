"""Snapshots: one camera frame, stylized at full resolution, then refined by Gatys optimisation.

The fast network gives a good first guess; Gatys optimisation against the style's stored Gram
targets (in the style file, so no painting is needed) then paints the painting's texture and
colours further into it, at the camera's full resolution. The loss weights are the loss net's
Gatys defaults with a stronger smoothness term (see `_loss_settings`); the layers are those the
style's targets were computed for. Three PNGs are written with a timestamped name that never
overwrites anything:

    20250131-142501_van_gogh_raw.png            the camera frame as captured
    20250131-142501_van_gogh_stylized.png       the fast network at full resolution
    20250131-142501_van_gogh_refined.png        after refinement (absent when cancelled)

Each is written atomically (temp file + rename): a full disk leaves a PNG absent, never
truncated, and the SnapshotError names the file and those kept.

Coarse to fine. The scales halve from full resolution down to a short side of COARSE_SIDE
(1280x720: 320x180, 640x360, 1280x720) and most steps run on the coarse ones: they cost a
sixteenth and a quarter of a full-resolution step, and there the Gram targets (computed from
the painting at a 384 px short side) paint strokes of the painting's own size, which upsampling
makes large motifs; the last few steps at full resolution work on the frame's own detail. Each
scale adds only its *change*, upsampled, to the stylized frame at the next size
(`keep_detail`), so the fast network's full-resolution strokes are kept, not blurred by the
coarse scales. DEFAULT_STEPS of them cost ~10 full-resolution steps. A time budget (45 s from
the start of the snapshot) ends the refinement early on a busy machine, keeping its best image
(and the full-resolution detail).

Torch. Only refinement needs PyTorch (imported when refining): with the torch-free runtime
(nstcam.engines.ort) a snapshot saves the raw and stylized frames and `refine_unavailable` says
why it was not refined. No Qt here: the window runs `take_snapshot` on a worker thread and passes
`progress` / `should_stop`.
"""
from __future__ import annotations

import importlib.util
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from trainer.fileio import atomic_write_bytes

if TYPE_CHECKING:
    import torch

DEFAULT_LOSS_NET = "efficientnet-lite0"
# Optimiser steps, shared out coarse to fine (refine_schedule).
DEFAULT_STEPS = 40
# Seconds from the start of a snapshot after which refinement stops and keeps its best image so
# far (not a cancel): a snapshot then ends within about this long even on a slower or busy machine.
DEFAULT_TIME_BUDGET = 45.0
# The coarsest scale's short side is at least this (the scales halve from full resolution).
COARSE_SIDE = 180
# Share of the steps spent at the finest scale (at least one).
FINE_SHARE = 1 / 8
# refine_side "auto": the camera's full resolution on every device.
AUTO = "auto"
NEEDS_TORCH = "refinement needs PyTorch (pip install torch), which is not installed here"
# Smoothness weight of the refinement relative to the loss net's Gatys default (see _loss_settings).
REFINE_TV_SCALE = 3.0

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
    mean_change: float | None = None  # mean |refined - stylized| over pixels and channels, of 255

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
    import torch

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


def refine_unavailable(style_model, loss_net: str = DEFAULT_LOSS_NET) -> str | None:
    """Why a snapshot of `style_model` cannot be refined here, for the user; None when it can."""
    if importlib.util.find_spec("torch") is None:
        return NEEDS_TORCH
    if not has_refine_targets(style_model, loss_net):
        return f"this style has no {loss_net} Gram targets to refine with"
    return None


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
        raise _not_written(path, exc, saved) from None


def _not_written(path: Path, exc: OSError, saved: tuple[Path, ...] = ()) -> SnapshotError:
    """'could not write PATH (reason); kept …' (or 'nothing was saved')."""
    kept = f"kept {', '.join(p.name for p in saved)}" if saved else "nothing was saved"
    return SnapshotError(f"could not write {path} ({exc.strerror or exc}); {kept}")


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
        except OSError as exc:  # a read-only or full folder
            raise _not_written(paths[0], exc) from None
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


def refine_schedule(size_wh: tuple[int, int], steps: int) -> tuple[tuple[float, ...], list[int]]:
    """Coarse-to-fine scales for an image of `size_wh` and the steps of each.

    The scales halve from 1 while the short side stays >= COARSE_SIDE; the finest gets FINE_SHARE
    of the steps (at least one), the coarser ones share the rest evenly (the coarsest any
    remainder). Scales left with no step are dropped.
    """
    scales = [1.0]
    while min(size_wh) * scales[0] / 2 >= COARSE_SIDE:
        scales.insert(0, scales[0] / 2)
    fine = max(1, round(steps * FINE_SHARE)) if len(scales) > 1 else steps
    base, extra = divmod(steps - fine, len(scales) - 1) if len(scales) > 1 else (0, 0)
    counts = [base + (i < extra) for i in range(len(scales) - 1)] + [fine]
    kept = [(scale, n) for scale, n in zip(scales, counts) if n > 0]
    return tuple(scale for scale, _ in kept), [n for _, n in kept]


def _loss_settings(style_model, net, defaults) -> dict[str, Any]:
    """Loss weights, layers and feature smoothing for refining with `net`.

    Weights: the net's Gatys defaults (content, style), which paint the painting's strokes over
    the whole frame, with the smoothness (TV) weight scaled by REFINE_TV_SCALE: pixel
    optimisation, unlike a feed-forward network, can satisfy the Gram targets with colourful
    pixel-level speckle that the stride-2 stem barely sees, and the stronger TV term keeps the
    strokes and drops the speckle (measured on the bundled styles; the old refinement, style
    weight x0.1, changed a 720p frame by under 2/255 on average). Layers: those the style's
    targets were computed for (its metadata), else the net's defaults that the targets cover.
    Smoothing: the style's own, as its Gram targets are of smoothed features then.
    """
    meta = getattr(style_model, "meta", {}) or {}
    trained_here = meta.get("loss_net") == net.name
    targets = (getattr(style_model, "style_targets", {}) or {}).get(net.name, {})
    settings: dict[str, Any] = {
        "content_weight": float(defaults.content),
        "style_weight": float(defaults.style),
        "tv_weight": float(defaults.tv) * REFINE_TV_SCALE,
        "smoothing": float(meta.get("smoothing") or 0.0) if trained_here else 0.0,
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
    (for styles without Gram targets, or without torch: see `refine_unavailable`). `steps` are
    shared out coarse to fine (`refine_schedule`); `refine_side` caps the finest scale's short
    side ("auto": the frame's full resolution). `time_budget` (seconds since the call began)
    ends the optimisation early, keeping its best image (`out_of_time`). Raises SnapshotError
    for a style that lacks the targets, refinement without torch, or an unusable frame or folder.
    """
    t0 = time.perf_counter()
    stop = should_stop or (lambda: False)
    if frame_bgr is None or frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3 or frame_bgr.size == 0:
        raise SnapshotError("no camera frame to take a snapshot of")
    if refine and importlib.util.find_spec("torch") is None:
        raise SnapshotError(f"{NEEDS_TORCH}; take the snapshot without refinement")
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
             out_of_time=False, change=None):
        return SnapshotResult(
            out_of_time=out_of_time,
            mean_change=change,
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

    import torch

    from trainer.gatys import refine as gatys_refine
    from trainer.images import tensor_to_rgb_array
    from trainer.lossnets import DEFAULT_WEIGHTS
    from trainer.perceptual import PerceptualLoss

    device = torch.device(str(getattr(engine, "device", "cpu")))
    rw, rh = refine_size_for((w, h), None if refine_side == AUTO else refine_side)  # type: ignore[arg-type]
    scales, per_scale = refine_schedule((rw, rh), steps)
    net = get_loss_net(loss_net, device)
    loss = PerceptualLoss(net, **_loss_settings(style_model, net, DEFAULT_WEIGHTS[net.name]))
    loss.set_style_targets(targets)

    def at_refine_size(img: np.ndarray) -> torch.Tensor:
        if (rw, rh) != (w, h):
            img = cv2.resize(img, (rw, rh), interpolation=cv2.INTER_AREA)
        return _to_tensor(img, device)

    content_t = at_refine_size(raw_rgb)
    init_t = at_refine_size(stylized)
    with torch.no_grad():
        content_features = loss.content_features(content_t)
        before = float(loss(init_t, content_features).style)
    if stop():
        return done(None, True, before, None, 0, (rw, rh))

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
        content_t, loss=loss, init=init_t, steps=per_scale, scales=scales, progress=progress,
        should_stop=stop_or_timeout, keep_detail=True,
    )
    cancelled = result.cancelled and user_stop
    if cancelled or result.steps_done == 0:
        return done(None, cancelled, before, None, result.steps_done, (rw, rh), out_of_time)
    refined_t = result.image.to(device)
    with torch.no_grad():
        after = float(loss(refined_t, content_features).style)
        if (rw, rh) != (w, h):
            # Refined at a smaller size (refine_side): add its change, upsampled, to the
            # full-resolution stylized frame, whose detail it lacks.
            change = torch.nn.functional.interpolate(refined_t - init_t, size=(h, w), mode="bilinear")
            refined_t = (_to_tensor(stylized, device) + change).clamp_(0, 1)
    refined_rgb = tensor_to_rgb_array(refined_t)
    change = float(np.abs(refined_rgb.astype(np.int16) - stylized.astype(np.int16)).mean())
    try:
        _write_png(refined_path, refined_rgb, (raw_path, stylized_path))
    except FileExistsError:
        # Someone else created our refined name meanwhile: take a fresh stem for it.
        with _name_lock:
            stem2 = _reserve_stem(out_dir, str(label), datetime.now())
        (out_dir / f"{stem2}_raw.png").unlink()
        refined_path = out_dir / f"{stem2}_refined.png"
        _write_png(refined_path, refined_rgb, (raw_path, stylized_path))
    return done(refined_path, False, before, after, result.steps_done, (rw, rh), out_of_time, change)
