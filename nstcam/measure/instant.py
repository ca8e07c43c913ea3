"""Instant styles (MicroAST) against the trained pack, side by side: `python -m nstcam.measure.instant`.

For each painting of the pack (the bundled style of the same name and its painting from
--paintings) it makes the instant style of the painting and measures both:

* quality on the eval photos (trainer.report's figures: edges kept, unblurred as the quality
  report publishes them, colour distance to the painting, strength, 1 and 2 px pan flicker; the
  photos' own colour distance for scale), and each instant style's calibrated detail amount
  (`--detail` sets one amount for all instead, to compare);
* flicker on generated clips without and with the runtime stabilizer (nstcam.measure.stability,
  through one StyleEngine holding both styles: the app's frame path);
* strength as the model's own feature interpolation (alpha) against the app's pixel blend, with
  the figures nstcam.live.controls chose the blend by (Lab mean, contrast, chroma, gradient
  energy at 0.5 as a fraction of the way from the photo to the full output; distance at 0);
* speed: ms per frame at --speed-size in fp32, both networks interleaved in one run;
* window: `nstcam --camera demo` (offscreen, nstcam.measure.bench_app) with the trained style and
  with `--style PAINTING.jpg`, interleaved rounds: fresh stylized frames per second and the time
  from launch to the first stylized frame (the instant style made during the launch);
* drop: the window (offscreen, CPU defaults, engine process) is sent a drop of each of the first
  five paintings in turn (`python -m nstcam.ui.drop_timing` in its own process, a fresh styles
  folder): seconds from the drop event to the style's first painted frame, against the issue's
  1.5 s (median of 5). Only meaningful on an idle machine;

and writes a contact sheet (photos down; per painting the trained and the instant style across)
and every figure as JSON. Set ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 to time an
AVX2-only CPU (`--only speed` runs the timing alone).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from nstcam.engines.instant import InstantStyle
from nstcam.jobs.instant_style import make_instant_style, read_picture
from nstcam.launch import DEFAULT_SIZE_CPU
from nstcam.measure.stability import DEFAULT_EVAL, compare_style, format_report, standard_clips, with_processors
from trainer.benchkit import table, write_json
from trainer.cliargs import frame_size, int_at_least, number
from trainer.images import load_image, pil_to_tensor, tensor_to_pil
from trainer.metrics import colour_distance, stylize
from trainer.report.cli import DEFAULT_IMAGES
from trainer.report.measure import quality
from trainer.report.sheets import contact_sheet

log = logging.getLogger(__name__)

DEFAULT_PAINTINGS = DEFAULT_EVAL.parent / "styles"
PACK = ("monet", "van_gogh", "munch", "hokusai", "kandinsky", "picabia")
PARTS = ("quality", "flicker", "strength", "speed", "sheet", "window", "drop")
DROP_TARGET_S = 1.5  # issue #22: drop to first stylized frame, median of 5 pictures


def _lab_figures(rgb: np.ndarray) -> np.ndarray:
    """Lab mean lightness, contrast (its spread), mean chroma and gradient energy of an RGB image."""
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab).astype(np.float32)
    chroma = np.hypot(lab[..., 1] - 128, lab[..., 2] - 128)
    gx = cv2.Sobel(lab[..., 0], cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(lab[..., 0], cv2.CV_32F, 0, 1)
    return np.array([lab[..., 0].mean(), lab[..., 0].std(), chroma.mean(), np.hypot(gx, gy).mean()])


def _to_rgb(t: torch.Tensor) -> np.ndarray:
    return np.asarray(tensor_to_pil(t))


def strength_figures(style: InstantStyle, photo: torch.Tensor) -> dict[str, Any]:
    """Feature interpolation (alpha 0.5 and 0) against the pixel blend (0.5 and 0) on one photo."""
    from nstcam.engines.microast import StyleCode, instant_net

    code = StyleCode(style.code)
    full, half, zero = (stylize(instant_net(code, alpha=a), photo) for a in (1.0, 0.5, 0.0))
    blend = 0.5 * full + 0.5 * photo
    p, f = _lab_figures(_to_rgb(photo)), _lab_figures(_to_rgb(full))
    span = np.where(np.abs(f - p) > 1e-6, f - p, np.nan)
    return {
        "alpha_half_fraction": ((_lab_figures(_to_rgb(half)) - p) / span).tolist(),
        "blend_half_fraction": ((_lab_figures(_to_rgb(blend)) - p) / span).tolist(),
        "alpha_half_distance": float((half - photo).abs().mean() / (full - photo).abs().mean()),
        "alpha_zero_distance": float((zero - photo).abs().mean() * 255),
    }


def time_nets(nets: dict[str, torch.nn.Module], size: tuple[int, int], repeats: int) -> dict[str, float]:
    """Median ms per frame of each net at `size` (w, h), fp32, interleaved round by round."""
    w, h = size
    x = torch.rand(1, 3, h, w)
    times: dict[str, list[float]] = {name: [] for name in nets}
    with torch.inference_mode():
        for net in nets.values():  # warm-up: oneDNN primitive creation
            net(x)
        for _ in range(repeats):
            for name, net in nets.items():
                t0 = time.perf_counter()
                net(x)
                times[name].append(1e3 * (time.perf_counter() - t0))
    return {name: statistics.median(v) for name, v in times.items()}


def window_rates(style: str, painting: Path, scratch: Path, rounds: int, seconds: float = 6.0) -> dict[str, Any]:
    """The window's fresh-stylization rate and first-frame time with the trained `style` and with
    its painting as an instant style (made in `scratch`, a fresh folder each round), interleaved."""
    from nstcam.measure.bench_app import window

    runs: dict[str, list[dict[str, float]]] = {"trained": [], "instant": []}
    for r in range(rounds):
        runs["trained"].append(window(DEFAULT_SIZE_CPU, "on", seconds, style))
        runs["instant"].append(window(DEFAULT_SIZE_CPU, "on", seconds, str(painting),
                                      XDG_DATA_HOME=str(scratch / f"window-{r}")))
    medians = {kind: {k: statistics.median(run[k] for run in got) for k in got[0]} for kind, got in runs.items()}
    print(f"window at {DEFAULT_SIZE_CPU} px, {rounds} rounds of {seconds:g} s (medians): "
          + "; ".join(f"{kind} {m['stylize_fps']:.1f} fresh fps, first frame {m['first_frame_s']:.2f} s"
                      for kind, m in medians.items()))
    return {"size": DEFAULT_SIZE_CPU, "rounds": runs, "median": medians}


def drop_latency(pictures: Sequence[Path], scratch: Path) -> dict[str, Any]:
    """Drop-to-first-frame seconds of `pictures` in a fresh window (nstcam.ui.drop_timing, its own
    process: Qt stays out of this module), with their median against DROP_TARGET_S."""
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen"),
           "XDG_DATA_HOME": str(scratch / "drop")}
    run = subprocess.run([sys.executable, "-m", "nstcam.ui.drop_timing", *map(str, pictures)],
                         capture_output=True, text=True, env=env, timeout=1800)
    if run.returncode != 0:
        raise RuntimeError(f"nstcam.ui.drop_timing failed: {run.stderr.strip()[-500:]}")
    result = json.loads(run.stdout.split("DROP_JSON ", 1)[1].splitlines()[0])
    print(f"drop to first frame ({result['engine']}): " + ", ".join(f"{s:.2f}" for s in result["seconds"])
          + f" s; median {result['median']:.2f} s against the issue's {DROP_TARGET_S:g} s")
    return {**result, "target_s": DROP_TARGET_S}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nstcam.measure.instant", description=__doc__.split("\n\n")[0])
    p.add_argument("--paintings", type=Path, default=DEFAULT_PAINTINGS, metavar="DIR",
                   help=f"folder with the pack's paintings as NAME.jpg (default: {DEFAULT_PAINTINGS})")
    p.add_argument("--eval", type=Path, default=DEFAULT_EVAL, metavar="DIR",
                   help=f"folder of evaluation photos (default: {DEFAULT_EVAL})")
    p.add_argument("--images", nargs="+", default=list(DEFAULT_IMAGES), metavar="NAME",
                   help="eval photos for the quality figures (default: the quality report's)")
    p.add_argument("--clip-images", nargs="+", default=["chicago.jpg"], metavar="NAME",
                   help="eval photos the flicker clips are made from (default: chicago.jpg)")
    p.add_argument("--clips", default="pan1,pan2,object", metavar="NAME[,NAME...]",
                   help="stability clips (default: pan1,pan2,object)")
    p.add_argument("--frames", type=int_at_least(2), default=12, metavar="N", help="frames per clip (default: 12)")
    p.add_argument("--size", type=int_at_least(16), default=256, metavar="N",
                   help="short side of the eval photos for the quality figures (default: 256)")
    p.add_argument("--speed-size", type=frame_size(16), default=(320, 240), metavar="WxH",
                   help="frame size of the timing (default: 320x240)")
    p.add_argument("--repeats", type=int_at_least(1), default=15, metavar="N", help="timed frames per net (default: 15)")
    p.add_argument("--styles", default=",".join(PACK), metavar="NAME[,NAME...]", help="paintings of the pack to use")
    p.add_argument("--only", default=",".join(PARTS), metavar="PART[,PART...]",
                   help=f"what to measure, of {','.join(PARTS)} (default: all)")
    p.add_argument("--rounds", type=int_at_least(1), default=3, metavar="N",
                   help="interleaved rounds of the window measurement (default: 3)")
    p.add_argument("--detail", type=number(positive=False), default=None, metavar="A",
                   help="add A x the frame's fine luma in every instant style instead of the amount "
                        "calibrated for each painting (to compare fixed amounts; default: calibrated)")
    p.add_argument("--threads", type=int_at_least(1), default=None, metavar="N", help="torch threads (default: torch's)")
    p.add_argument("--json", type=Path, metavar="FILE", help="write every figure here (atomically)")
    p.add_argument("--sheet", type=Path, metavar="IMG", help="write the contact sheet here (.jpg or .png)")
    p.add_argument("--cell", type=int_at_least(32), default=160, metavar="PX", help="contact sheet cell size (default: 160)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    import tempfile

    from nstcam.engines.torch_engine import StyleEngine
    from nstcam.live.stabilize import FlowStabilizer
    from nstcam.registry import StyleRegistry, bundled_styles_dir

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    parts = {s.strip() for s in args.only.split(",")}
    names = [s.strip() for s in args.styles.split(",") if s.strip()]
    registry = StyleRegistry.discover([bundled_styles_dir()])
    trained = {n: registry.choose(n, "cpu").model for n in names}
    scratch = Path(tempfile.mkdtemp(prefix="nstcam-instant-"))
    instant: dict[str, InstantStyle] = {}
    encode_ms = {}
    for n in names:
        t0 = time.perf_counter()
        instant[n] = make_instant_style(read_picture(args.paintings / f"{n}.jpg"), scratch, n)
        encode_ms[n] = 1e3 * (time.perf_counter() - t0)
        if args.detail is not None:
            instant[n].meta["detail"] = args.detail
    report: dict[str, Any] = {"meta": {"argv": list(argv) if argv is not None else sys.argv[1:],
                                       "torch_threads": torch.get_num_threads(),
                                       "isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "native"),
                                       "loadavg": [round(v, 2) for v in os.getloadavg()]},
                              "encode_ms": encode_ms, "detail": {n: instant[n].detail for n in names}}
    nets = {(n, kind): (trained[n] if kind == "trained" else instant[n]).build("cpu", torch.float32)
            for n in names for kind in ("trained", "instant")}
    photos = {name: pil_to_tensor(load_image(args.eval / name, args.size)) for name in args.images}
    if "quality" in parts or "sheet" in parts:
        rows, cells = [], {name: [tensor_to_pil(t)] for name, t in photos.items()}
        for n in names:
            painting = pil_to_tensor(load_image(args.paintings / f"{n}.jpg", args.size))
            for kind in ("trained", "instant"):
                figures = []
                for name, photo in photos.items():
                    out = stylize(nets[(n, kind)], photo)
                    cells[name].append(tensor_to_pil(out))
                    if "quality" in parts:
                        figures.append({**quality(out, photo, painting, nets[(n, kind)]),
                                        "photo_colour": colour_distance(photo, painting)})
                if figures:
                    rows.append({"style": n, "engine": kind, "detail": instant[n].detail if kind == "instant" else None,
                                 **{k: statistics.mean(f[k] for f in figures) for k in figures[0]}})
        report["quality"] = rows
        if rows:
            print(table(rows, [("style", "style", ""), ("engine", "engine", ""), ("detail", "detail", ".3g"),
                               ("edges", "edge", ".2f"),
                               ("colour", "colour", ".1f"), ("photo colour", "photo_colour", ".1f"),
                               ("strength", "strength", ".1f"), ("pan 1px", "pan1", ".1f"), ("pan 2px", "pan2", ".1f")]))
        if args.sheet and "sheet" in parts:
            labels = [("photo", "")] + [(n, kind) for n in names for kind in ("trained", "instant")]
            sheet = contact_sheet([cells[name] for name in photos], [Path(p).stem for p in photos], labels, args.cell)
            from trainer.fileio import atomic_save_image

            atomic_save_image(sheet, args.sheet)
    if "strength" in parts:
        per = [strength_figures(instant[n], photo) for n in names for photo in list(photos.values())[:4]]
        keys = ("alpha_half_fraction", "blend_half_fraction")
        summary = {k: np.nanmedian(np.array([r[k] for r in per]), axis=0).round(3).tolist() for k in keys}
        for k in ("alpha_half_distance", "alpha_zero_distance"):
            summary[k] = statistics.median(r[k] for r in per)
        report["strength"] = {"median": summary, "figures": ["L mean", "L spread", "chroma", "gradient"]}
        print(f"strength 0.5, fraction of the way from the photo to the full style (Lab mean, contrast, chroma, "
              f"gradient energy; medians): alpha {summary['alpha_half_fraction']}, pixel blend "
              f"{summary['blend_half_fraction']}; mean |change| alpha {summary['alpha_half_distance']:.2f} of "
              f"the full style's, blend 0.50. Strength 0, distance from the photo: alpha "
              f"{summary['alpha_zero_distance']:.1f}/255, blend 0 (the photo itself)")
    if "flicker" in parts:
        engine = StyleEngine({**{f"{n}/trained": trained[n] for n in names},
                              **{f"{n}/instant": instant[n] for n in names}},
                             device="cpu", size=None, precision="fp32", channels_last=False)
        clip_names = [c.strip() for c in args.clips.split(",") if c.strip()]
        results = []
        for img in args.clip_images:
            clips = standard_clips(cv2.imread(str(args.eval / img)), clip_names, args.frames)
            for style in engine.style_names:
                results.append(compare_style(engine, style, clips,
                                         {"stabilized": with_processors(lambda: [FlowStabilizer()])}))
        print(format_report(results, clip_names))
        from nstcam.measure.stability import to_json

        report["flicker"] = to_json(results, {})
    if "speed" in parts:
        light = time_nets({"trained light": nets[(names[0], "trained")], "instant": nets[(names[0], "instant")]},
                          args.speed_size, args.repeats)
        report["speed"] = {"size": list(args.speed_size), "ms": light, "ratio": light["instant"] / light["trained light"]}
        print(f"fp32 {args.speed_size[0]}x{args.speed_size[1]}, {torch.get_num_threads()} threads, "
              f"{report['meta']['isa']}: trained light {light['trained light']:.1f} ms, instant {light['instant']:.1f} ms "
              f"({report['speed']['ratio']:.2f}x); encoding a painting {statistics.median(encode_ms.values()):.0f} ms")
    if "window" in parts:
        report["window"] = window_rates(names[0], args.paintings / f"{names[0]}.jpg", scratch, args.rounds)
    if "drop" in parts:
        report["drop"] = drop_latency([args.paintings / f"{n}.jpg" for n in names[:5]], scratch)
    if args.json:
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
