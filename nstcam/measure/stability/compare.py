"""Every renderer side by side on identical stylized frames, per style, and the figures averaged over
the photos the clips were made from."""
from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nstcam.measure.stability.clips import Clip
from nstcam.measure.stability.figures import Figures, evaluate
from nstcam.measure.stability.renderers import FrameTimes, Renderer

@dataclass
class Comparison:
    """Every renderer's figures on every clip for one style, and each processor's ms/frame."""

    style: str
    figures: dict[str, dict[str, Figures]] = field(default_factory=dict)  # clip -> renderer -> figures
    ms_per_frame: dict[str, float] = field(default_factory=dict)  # renderer -> median wall ms/frame
    cpu_ms_per_frame: dict[str, float] = field(default_factory=dict)  # renderer -> median CPU ms/frame


def compare_style(engine: Any, style: str, clips: Sequence[Clip],
                  renderers: dict[str, Renderer]) -> Comparison:
    """Stylize each clip once and give the same stylized frames to each renderer, so the
    renderers are compared side by side on identical input ("baseline": every frame as stylized)."""
    result = Comparison(style)
    times = {name: FrameTimes() for name in renderers}
    for clip in clips:
        stylized = [engine.stylize(f, style=style) for f in clip.frames]
        result.figures[clip.name] = {"baseline": evaluate(clip, stylized)}
        for name, make in renderers.items():
            outputs = make(clip.frames, stylized, times[name])
            result.figures[clip.name][name] = evaluate(clip, outputs)
    for name, t in times.items():
        result.ms_per_frame[name], result.cpu_ms_per_frame[name] = t.medians()
    return result



def average_over_images(per_image: Sequence[Comparison]) -> Comparison:
    """The figures of one style averaged over the photos (one Comparison each)."""
    first = per_image[0]

    def median_over_images(attr: str) -> dict[str, float]:
        return {k: statistics.median(getattr(c, attr)[k] for c in per_image) for k in getattr(first, attr)}

    merged = Comparison(first.style, ms_per_frame=median_over_images("ms_per_frame"),
                        cpu_ms_per_frame=median_over_images("cpu_ms_per_frame"))
    for clip, by_renderer in first.figures.items():
        merged.figures[clip] = {}
        for name in by_renderer:
            figs = [c.figures[clip][name] for c in per_image]
            band = [f.edge_band for f in figs if f.edge_band is not None]
            merged.figures[clip][name] = Figures(
                warp=float(np.mean([f.warp for f in figs])),
                input_warp=float(np.mean([f.input_warp for f in figs])),
                strength=float(np.mean([f.strength for f in figs])),
                edge=float(np.mean([f.edge for f in figs])),
                edge_band=float(np.mean(band)) if band else None,
            )
    return merged
