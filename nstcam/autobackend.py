"""`--backend auto` on a CPU: the candidates built and timed for a style (nstcam.engines.choice),
and the launch that runs a remembered choice without importing torch before the first frame.

Kept apart from nstcam.launch: the timing builds every engine kind, and the torch-free path must
find the styles, their exports and the remembered choice with nothing but ONNX Runtime.
"""
from __future__ import annotations

import logging
import statistics
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nstcam.engines import choice as choices
from nstcam.engines.choice import Candidate, Choice

log = logging.getLogger(__name__)

PSNR_FRAMES = 4  # calibration frames compared between int8 and fp32


def frame_shape(size: int) -> tuple[int, int]:
    """(h, w) of a 4:3 camera frame at processing size `size` (what a webcam gives)."""
    return size, round(size * 4 / 3 / 2) * 2


def auto_choice(model: Any, size: int, threads: int) -> Choice:
    """The remembered choice for `model`'s architecture at `size`, or a new one measured now (also
    when the remembered one was a close call, nstcam.engines.choice.CLOSE_CALL)."""
    key = choices.choice_key(choices.model_arch_id(model), size, threads)
    remembered = choices.recall(key)
    if remembered is not None and remembered.settled:
        log.info("backend: %s", remembered.reason())
        return remembered
    chosen = measure(model, size, threads)
    if remembered is not None:  # a close call: each candidate keeps its best figure
        chosen = remembered.measured_again(chosen)
        log.info("backend: measured again: %s", chosen.reason())
    choices.remember(key, chosen)
    return chosen


def measure(model: Any, size: int, threads: int) -> Choice:
    """Build and time every candidate that exists here for the style file `model` (a StyleModel)."""
    from nstcam.engines.onnx_export import ensure_onnx
    from nstcam.engines.ort import OnnxStyleEngine
    from nstcam.engines.torch_engine import StyleEngine
    from nstcam.live.demo import calibration_frames
    from nstcam.live.pipeline import engine_lanes, lane_pool
    from trainer.devices import cpu_bf16_supported

    h, w = frame_shape(size)
    frames = calibration_frames(shape=(h, w))
    engines: dict[Candidate, Any] = {}
    for precision in (["bf16"] if cpu_bf16_supported() else []) + ["fp32"]:
        engines[Candidate("torch", precision)] = StyleEngine({"s": model}, device="cpu", size=size, precision=precision)
    excluded: dict[str, str] = {}
    fp32 = OnnxStyleEngine({"s": ensure_onnx(model.path)}, device="cpu", size=size, threads=threads)
    engines[Candidate("onnxruntime", "fp32")] = fp32
    int8 = OnnxStyleEngine({"s": ensure_onnx(model.path, "int8", frames)}, device="cpu", size=size, threads=threads)
    db = statistics.median(choices.psnr(int8.stylize(f), fp32.stylize(f)) for f in frames[:PSNR_FRAMES])
    why = choices.int8_exclusion(db)
    if why is None:
        engines[Candidate("onnxruntime", "int8")] = int8
    else:
        excluded[Candidate("onnxruntime", "int8").label] = why
    cycle = iter(range(1 << 62))
    with ExitStack() as pools:

        def timing(engine: Any) -> Callable[[], int]:
            """A run of `engine`'s lanes' worth of frames at once, as the stylize thread and render
            keep them in flight (ONNX Runtime two; torch one, on this thread)."""
            lanes = engine_lanes(engine)
            pool = pools.enter_context(lane_pool(lanes, name="timing"))

            def run() -> int:
                list(pool.map(engine.stylize, [frames[next(cycle) % len(frames)] for _ in range(lanes)]))
                return lanes
            return run

        timed = choices.time_candidates({c: timing(e) for c, e in engines.items()})
    return choices.fastest(timed, excluded, f"{w}x{h}")


def trained_style_files(dirs: Sequence[Path]) -> list[Path]:
    """The trained style files (*.pt) in `dirs`: a launch without torch needs an export of each."""
    return [pt for folder in dirs if folder.is_dir() for pt in sorted(folder.glob("*.pt"))]


@dataclass(frozen=True)
class RememberedLaunch:
    """A launch decided without torch: `registry` holds the styles' ONNX exports (int8 where that
    was chosen) and the instant styles; `sources` maps each style to its style file, which an
    engine process loads when the choice is torch."""

    registry: Any
    choice: Choice
    sources: dict[str, Path]


def remembered_launch(dirs: Sequence[Path], size: int, threads: int, style: str | None) -> RememberedLaunch | None:
    """The launch remembered here for `style`'s network at `size` (None: the first style), when
    every style file has a current ONNX export; else None (the torch path decides, and measures).
    Imports no torch: the registry holds the exports (nstcam.engines.ort.OnnxStyle)."""
    if not choices.remembered_here(threads):
        return None
    from nstcam.engines.onnx_export import cache_dir, file_sha256
    from nstcam.engines.onnx_metadata import read_metadata
    from nstcam.engines.ort import SUFFIXES, OnnxStyle
    from nstcam.registry import StyleRegistry

    registry = StyleRegistry.discover([cache_dir(), *dirs], runtime="onnx")
    exported = {e.model.meta.get("source_sha256") for e in registry.entries if isinstance(e.model, OnnxStyle)}
    style_files: dict[str, Path] = {}
    for pt in trained_style_files(dirs):
        digest = file_sha256(pt)
        if digest not in exported:
            log.info("backend: %s has no current ONNX export; deciding with torch", pt)
            return None
        style_files[digest] = pt
    models = registry.select("cpu")
    name = next(iter(models), None) if style is None else style
    if name not in models:
        return None
    model = models[name]
    arch = model.meta.get("arch") if isinstance(model, OnnxStyle) else choices.model_arch_id(model)
    remembered = choices.recall(choices.choice_key(arch, size, threads)) if arch else None
    if remembered is None:
        return None
    if not remembered.settled:
        log.info("backend: %s; deciding with torch", remembered.reason())
        return None
    if remembered.chosen.backend == "onnxruntime" and remembered.chosen.precision != "fp32":
        suffix = SUFFIXES[remembered.chosen.precision]
        for entry in registry.entries:
            if not isinstance(entry.model, OnnxStyle):
                continue  # an instant style runs on MicroAST's graph
            quantized = Path(str(entry.path)[: -len(SUFFIXES["fp32"])] + suffix)
            if read_metadata(quantized).get("source_sha256") != entry.model.meta.get("source_sha256"):
                return None
            entry.model = OnnxStyle(entry.model.name, quantized, entry.model.meta)
    sources = {n: style_files.get(m.meta.get("source_sha256")) if isinstance(m, OnnxStyle) else m.path
               for n, m in models.items()}
    if any(path is None for path in sources.values()):  # an export whose style file is gone (cache)
        return None
    log.info("backend: %s", remembered.reason())
    return RememberedLaunch(registry, remembered, sources)
