"""`python -m nstcam.measure.stability`: every style without and with the runtime stabilizer."""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import cv2

from nstcam.measure.stability.clips import CLIP_NAMES, Clip, standard_clips, video_clip
from nstcam.measure.stability.compare import average_over_images, compare_style
from nstcam.measure.stability.renderers import (
    EmaBlend,
    Renderer,
    apply_processors,
    default_engine,
    engine_stylizer,
    inbetween_renderer,
    with_processors,
)
from nstcam.measure.stability.report import format_report, strip_image, to_json
from trainer.benchkit import write_json
from trainer.cliargs import frame_size, int_at_least

log = logging.getLogger(__name__)

DEFAULT_EVAL = Path(__file__).resolve().parents[4] / "shared" / "data" / "eval"
DEFAULT_IMAGES = ("chicago.jpg", "monarch.jpg")


def _parse_keep(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m nstcam.measure.stability",
        description="Measure how steady the stylized video is, for every style, without and with the "
                    "runtime stabilizer, on clips with known motion (or on videos).",
    )
    p.add_argument("--images", nargs="+", type=Path, metavar="IMG",
                   help="photos to make the clips from (default: "
                        f"{', '.join(DEFAULT_IMAGES)} from {DEFAULT_EVAL}); figures are averaged over them")
    p.add_argument("--video", nargs="+", type=Path, metavar="FILE",
                   help="measure these videos instead of generated clips (motion estimated by DIS optical "
                        "flow with a forward-backward occlusion check)")
    p.add_argument("--clips", default=",".join(CLIP_NAMES), metavar="NAME[,NAME...]",
                   help=f"generated clips to run (default: all of {','.join(CLIP_NAMES)}; pans in px/frame)")
    p.add_argument("--frames", type=int, default=24, metavar="N", help="frames per clip (default: 24)")
    p.add_argument("--size", type=frame_size(64), default=(320, 240), metavar="WxH",
                   help="clip size; the engine stylizes at this size (default: 320x240)")
    p.add_argument("--noise", type=float, default=3.0, metavar="SIGMA",
                   help="Gaussian sensor noise added to generated clips, 0-255 scale (default: 3)")
    p.add_argument("--styles", metavar="NAME[,NAME...]", help="styles to measure (default: all)")
    p.add_argument("--styles-dir", metavar="DIR", help="extra style folder (besides the bundled styles)")
    p.add_argument("--device", default="cpu", help="engine device: cpu, cuda, auto (default: cpu)")
    p.add_argument("--threads", type=int, metavar="N", help="torch and OpenCV CPU threads (default: their choice)")
    p.add_argument("--ema", type=_parse_keep, metavar="KEEP",
                   help="also report the naive exponential blend of past outputs with this weight on the "
                        "past (e.g. 0.7), to show what ignoring motion costs")
    p.add_argument("--inbetween", type=int_at_least(2), nargs="+", metavar="K",
                   help="also report in-between frames (nstcam.live.inbetween) for an engine K times slower "
                   "than the camera: every K-th frame stylized and ready K frames later, the others moved "
                   "along the flow from it; without and with the stabilizer on the stylized frames, and "
                   "the stylized frames held instead (what is shown without in-between frames)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sensor noise (default: 0)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write every figure as JSON (atomically)")
    p.add_argument("--strip", type=Path, metavar="PNG",
                   help="also save a before/after picture: the first style on the first clip, four "
                   "frames and their motion-compensated change (the shimmer), without and with the stabilizer")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress")
    return p


def _load_clips(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[list[Clip]]:
    """One list of clips per photo (their figures are averaged), or one list of all the videos;
    a bad path ends the run with a message."""
    if args.video:
        try:
            return [[video_clip(v, args.size, max(args.frames, 2)) for v in args.video]]
        except ValueError as exc:
            parser.error(str(exc))
    images = args.images or [DEFAULT_EVAL / name for name in DEFAULT_IMAGES]
    names = [n.strip() for n in args.clips.split(",") if n.strip()]
    if args.frames < 2:
        parser.error("--frames must be at least 2")
    sets = []
    for path in images:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            hint = " (or pass --images)" if not args.images else ""
            parser.error(f"cannot read image {path}: is the path right and the file a photo?{hint}")
        try:
            sets.append(standard_clips(image, names, args.frames, args.size, args.noise, args.seed))
        except ValueError as exc:
            parser.error(str(exc))
    return sets



def main(argv: Sequence[str] | None = None) -> int:
    from nstcam.launch import CliError
    from nstcam.live.stabilize import FlowStabilizer

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    clip_sets = _load_clips(args, parser)
    try:
        engine = default_engine(args.device, args.styles_dir)
    except CliError as exc:
        parser.error(str(exc))
    styles = engine.style_names
    if args.styles:
        styles = [s.strip() for s in args.styles.split(",") if s.strip()]
        unknown = [s for s in styles if s not in engine.style_names]
        if unknown:
            parser.error(f"unknown style(s) {', '.join(unknown)}; available: {', '.join(engine.style_names)}")
    renderers: dict[str, Renderer] = {"stabilized": with_processors(lambda: [FlowStabilizer()])}
    if args.ema:
        renderers["ema"] = with_processors(lambda: [EmaBlend(args.ema)])
    for every in args.inbetween or ():
        renderers[f"held/{every}"] = inbetween_renderer(every, move=False)
        renderers[f"inbetween/{every}"] = inbetween_renderer(every)
        renderers[f"inbetween/{every}+stab"] = inbetween_renderer(every, lambda: [FlowStabilizer()])
    engine.warmup(*args.size)
    results = []
    for style in styles:
        log.info("measuring %s", style)
        results.append(average_over_images([compare_style(engine, style, clips, renderers) for clips in clip_sets]))
    clip_names = list(results[0].figures) if results else []
    print(format_report(results, clip_names))
    if args.strip:
        clip = clip_sets[0][0]
        plain = engine_stylizer(engine, styles[0])(clip.frames)
        steady = apply_processors(clip.frames, plain, [FlowStabilizer()])
        from trainer.fileio import atomic_write_bytes

        ok, png = cv2.imencode(".png", strip_image(clip, plain, steady)[..., ::-1])
        atomic_write_bytes(args.strip, png.tobytes())
    if args.json:
        import torch

        meta = {
            "argv": list(argv) if argv is not None else sys.argv[1:],
            "engine": engine.describe(), "torch_threads": torch.get_num_threads(),
            "opencv_threads": cv2.getNumThreads(), "loadavg": [round(v, 2) for v in os.getloadavg()],
            "size": list(args.size), "frames": args.frames, "noise": args.noise,
            "sources": [str(p) for p in (args.video or args.images or [DEFAULT_EVAL / n for n in DEFAULT_IMAGES])],
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        write_json(args.json, to_json(results, meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
