"""How steady the stylized video is: clips with known motion, and figures that compare renderers.

A stylized video boils when the texture does not follow the scene. The figure for that is the
*warp error*: frame t+1 warped back onto frame t along the true motion, minus frame t, mean
absolute value over the pixels the motion defines (0-255). On its own it rewards a blurry or a
lagging output, so three more figures guard it: the same warp error for the input (the floor set by
sensor noise), the *strength* (mean |output - input|: how much the style changed the picture) and
the *edge alignment* (correlation of the output's gradient magnitude with the current input's, over
the whole frame and in a band around a moving object: trails and ghosts put edges where the input
has none).

Clips are generated from any photo with an exactly known motion -- pans of 1, 2 and 3 px/frame, a
slow zoom, a still scene, an object crossing a still background, all with Gaussian sensor noise --
or read from a video, whose motion is then estimated with DIS optical flow and a forward-backward
occlusion check. What is measured is any `stylize_clip(frames_bgr) -> frames_rgb` callable.

Modules: `clips` (clips and their motion), `figures` (the figures and goals), `renderers` (what is
shown for a clip, timed), `compare` (renderers side by side per style), `report` (tables, JSON, the
before/after picture) and `cli`. CLI: `python -m nstcam.measure.stability --help` compares every
bundled style without and with the runtime stabilizer (`nstcam.live.stabilize.FlowStabilizer`).
"""
from nstcam.measure.stability.cli import DEFAULT_EVAL, DEFAULT_IMAGES, build_parser, main
from nstcam.measure.stability.clips import (
    CLIP_NAMES,
    MARGIN,
    Clip,
    Motion,
    affine_clip,
    estimate_motion,
    object_clip,
    pan_clip,
    standard_clips,
    still_clip,
    synthetic_scene,
    video_clip,
    zoom_clip,
)
from nstcam.measure.stability.compare import Comparison, average_over_images, compare_style
from nstcam.measure.stability.figures import (
    BAND_RADIUS,
    EDGE_GOAL,
    STRENGTH_GOAL,
    WARP_GOAL,
    Figures,
    edge_alignment,
    evaluate,
    meets_goals,
    motion_at,
    strength,
    warp_error,
)
from nstcam.measure.stability.renderers import (
    EmaBlend,
    FrameTimes,
    Renderer,
    StylizeClip,
    apply_processors,
    default_engine,
    engine_stylizer,
    inbetween_renderer,
    with_processors,
)
from nstcam.measure.stability.report import format_report, strip_image, to_json

__all__ = [
    "BAND_RADIUS", "CLIP_NAMES", "DEFAULT_EVAL", "DEFAULT_IMAGES", "EDGE_GOAL", "MARGIN", "STRENGTH_GOAL",
    "WARP_GOAL", "Clip", "Comparison", "EmaBlend", "Figures", "FrameTimes", "Motion", "Renderer", "StylizeClip",
    "affine_clip", "apply_processors", "average_over_images", "build_parser", "compare_style", "default_engine",
    "edge_alignment", "engine_stylizer", "estimate_motion", "evaluate", "format_report", "inbetween_renderer",
    "main", "meets_goals", "motion_at", "object_clip", "pan_clip", "standard_clips", "still_clip", "strength",
    "strip_image", "synthetic_scene", "to_json", "video_clip", "warp_error", "with_processors", "zoom_clip",
]
