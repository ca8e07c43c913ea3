"""`--backend auto` on a CPU: the candidates built and timed for a style (nstcam.engines.choice),
and the launch that runs a remembered choice without importing torch before the first frame.

Kept apart from nstcam.launch: the timing builds every engine kind, and the torch-free path must
find the styles, their exports and the remembered choice with nothing but ONNX Runtime.
"""
from __future__ import annotations

import itertools
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
    from nstcam.live.pipeline import engine_lanes, frames_in_flight, lane_pool, stream
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
    cycle = itertools.cycle(frames)
    with ExitStack() as pools:

        def timing(engine: Any) -> Callable[[int], int]:
            """`n` frames for each of `engine`'s lanes, streamed as render and the stylize thread
            keep them in flight (ONNX Runtime two lanes; torch one, on this thread)."""
            lanes = engine_lanes(engine)
            pool = pools.enter_context(lane_pool(lanes, name="timing"))

            def run(n: int) -> int:
                return stream(pool, engine.stylize, itertools.islice(cycle, n * lanes), frames_in_flight(lanes))
            return run

        timed = choices.time_candidates({c: timing(e) for c, e in engines.items()})
    return choices.fastest(timed, excluded, f"{w}x{h}")


def trained_style_files(dirs: Sequence[Path]) -> list[Path]:
    """The trained style files (*.pt) in `dirs`: the ones a launch without torch runs as exports."""
    return [pt for folder in dirs if folder.is_dir() for pt in sorted(folder.glob("*.pt"))]


@dataclass(frozen=True)
class RememberedLaunch:
    """A launch decided without torch: `registry` holds the styles' ONNX exports (int8 where that
    was chosen; a `LateExport` where one is still to be made) and the instant styles; `sources`
    maps each style to its style file, which an engine process loads when the choice is torch."""

    registry: Any
    choice: Choice
    sources: dict[str, Path]


def remembered_launch(dirs: Sequence[Path], size: int, threads: int, style: str | None) -> RememberedLaunch | None:
    """The launch remembered here for `style`'s network at `size` (None: the first style), when
    that style has a current ONNX export; else None (the torch path decides, and measures). The
    other styles' missing exports are made on their first frames (a first session too short for
    the thumbnails to make them all must not cost the next launch torch). Imports no torch."""
    if not choices.remembered_here(threads):
        return None
    from nstcam.engines.onnx_export import exported_style
    from nstcam.engines.ort import LateExport, OnnxStyle
    from nstcam.registry import StyleRegistry

    registry = StyleRegistry.discover(dirs, runtime="export")
    if registry.duplicates or any(bad.path.suffix == ".pt" for bad in registry.broken):
        return None  # the torch path says what is wrong, and loads the weights it chooses between
    models = registry.select("cpu")
    name = next(iter(models), None) if style is None else style
    if name not in models:
        return None
    model = models[name]
    if isinstance(model, LateExport):
        log.info("backend: style %s has no current ONNX export; deciding with torch", name)
        return None
    arch = model.meta.get("arch") if isinstance(model, OnnxStyle) else choices.model_arch_id(model)
    remembered = choices.recall(choices.choice_key(arch, size, threads)) if arch else None
    if remembered is None:
        return None
    if not remembered.settled:
        log.info("backend: %s; deciding with torch", remembered.reason())
        return None
    trained = [entry for entry in registry.entries if isinstance(entry.model, OnnxStyle)]
    if remembered.chosen.backend == "onnxruntime" and remembered.chosen.precision != "fp32":
        from nstcam.live.demo import calibration_frames

        frames = calibration_frames()
        for entry in trained:
            entry.model = exported_style(entry.path, remembered.chosen.precision, frames)
        if isinstance(registry.choose(name, "cpu").model, LateExport):
            return None
    late = [entry.name for entry in trained if isinstance(entry.model, LateExport)]
    if late and remembered.chosen.backend == "torch":  # the engine process loads torch meanwhile:
        return None  # the torch path exports them in the background, at the lowest priority
    if late:
        log.info("backend: exporting %s on their first frames", ", ".join(late))
    log.info("backend: %s", remembered.reason())
    return RememberedLaunch(registry, remembered, {n: registry.choose(n, "cpu").path for n in models})
