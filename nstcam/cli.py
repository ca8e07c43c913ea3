"""The `nstcam` command line: the live window, headless `render`, and the `styles` listing.

    nstcam [--camera SOURCE] [--style NAME] [--device auto|cuda|cpu] [--precision ...] [--size N]
           [--mirror] [--record FILE] [--styles-dir DIR] [--fullscreen] [--pictures-dir DIR]
           [--virtual-camera [DEVICE]] [--no-stabilize] [--strength S] [--preserve-colors [MODE]]
           [--crossfade | --no-crossfade] [--record-size camera|processing] [--no-inbetween] [--version]
    nstcam render INPUT -o OUTPUT --style NAME [--size N] [--device ...] [--precision ...]
           [--styles-dir DIR] [--no-stabilize] [--strength S] [--preserve-colors [MODE]]

The window remembers its settings (nstcam.ui.settings); a flag given on the command line wins over
the remembered value, so the window's flags default to None ("not given").
    nstcam styles [--styles-dir DIR]

Every user error (unknown style, missing or unreadable file, a camera that cannot be opened when
named explicitly, an unusable device) ends with ONE line on stderr that names the problem and the
choices, and exit status 2: never a traceback. The checks live in `nstcam.launch`; Qt is imported
only to open the window (`nstcam.ui.app`, lazily), so `styles` and `render` run without it.
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nstcam.launch import (BACKENDS, DEFAULT_SIZE_CPU, DEFAULT_SIZE_CUDA, PROG, CliError, app_version,
                           apply_threads, build_engine, check_size, check_style, choose_backend, load_registry,
                           look_from_args, make_processors, prepare_window, remove_instant, resolve_backend,
                           resolve_device)
from nstcam.engines.api import PRECISIONS
from nstcam.host.omp import prefer_passive_waits
from nstcam.host.opencv_threads import prefer_single_thread
from trainer.cliargs import int_at_least, number

DEVICE_CHOICES = ("auto", "cuda", "cpu")
COLOR_MODES = ("luminance", "statistics", "off")  # nstcam.live.controls.COLOR_MODES, without importing cv2

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------
# Argument types


def _device(text: str) -> str:
    value = text.strip().lower()
    if value in DEVICE_CHOICES or (value.startswith("cuda:") and value[5:].isdigit()):
        return value
    raise argparse.ArgumentTypeError(
        f"unknown device {text!r}; choose one of: {', '.join(DEVICE_CHOICES)} (or cuda:N)"
    )


def _strength(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:  # also refuses nan, and inf (1e309 reads as inf)
        raise argparse.ArgumentTypeError(f"must be a finite number between 0 and 1, got {text}")
    return value


def max_threads() -> int:
    """More threads than this only adds contention (1024 ran 10x slower on 2 cores) and, far
    beyond, fails inside OpenMP or crashes it."""
    return 4 * (os.cpu_count() or 1)


def _threads(text: str) -> int:
    value = int_at_least(1)(text)
    if value > max_threads():
        raise argparse.ArgumentTypeError(f"at most {max_threads()} on this machine "
                                         f"(4 per CPU core), got {value}")
    return value


def _add_common(p: argparse.ArgumentParser, size_help: str) -> None:
    p.add_argument("--style", metavar="NAME|PICTURE",
                   help="style to use (see `nstcam styles`), or a picture file (JPEG, PNG, ...) to "
                   "make an instant style from in about a second (kept in the user styles folder)")
    p.add_argument("--device", type=_device, default="auto", metavar="auto|cuda|cpu",
                   help="where the style network runs; auto = CUDA if available, else CPU "
                   "(default: auto)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="number format of the style network: auto = fp16 on CUDA and, on CPU, bf16 "
                   "where the CPU computes it natively (about twice as fast), else fp32; fp32 forces "
                   "full precision (default: auto)")
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="what runs the style network: torch (needed for snapshot refinement and "
                   "training; bf16 on CPUs that have it) or onnxruntime (the torch-free runtime of the "
                   "desktop bundle; styles are exported to ONNX once and cached); auto = on a CPU "
                   "with --precision auto and a processing size, whichever measured fastest here "
                   "(torch bf16 where native, torch fp32, ONNX Runtime fp32, or ONNX Runtime int8 "
                   "when within 35 dB of fp32), timed once per network and size on the first launch "
                   "and remembered in the user cache (`nstcam doctor` shows it); else torch where "
                   "installed. On a CPU with 2 or more threads ONNX Runtime keeps two frames in "
                   "flight, one thread each, and is timed that way (default: auto)")
    p.add_argument("--size", type=int_at_least(1), default=None, metavar="N", help=size_help)
    p.add_argument("--styles-dir", metavar="DIR", action="append", default=[],
                   help="extra folder of style files (*.pt); may be repeated; searched after the "
                   "bundled and user styles, and wins over them for the same name")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="log what the app decides and measures (engine set-up, time to the first "
                   "stylized frame, ...)")
    p.add_argument("--threads", type=_threads, default=None, metavar="N",
                   help="CPU threads the engine may use, 1 to 4 per CPU core (default: the number of "
                   "cores; fewer are used while they measure faster, as on a CPU busy with other "
                   "work); ONNX Runtime splits them between two frames in flight, so 1 also keeps "
                   "one frame at a time (the least latency)")
    p.add_argument("--no-stabilize", dest="stabilize", action="store_false", default=None,
                   help="stylize each frame on its own; by default the previous output, moved along "
                   "the camera's optical flow, is blended in where it still fits, so textures stay "
                   "put instead of shimmering when anything moves (toggle with T in the window)")
    p.add_argument("--strength", type=_strength, default=None, metavar="S",
                   help="how much of the style to apply, 0-1: 0 shows the camera as is, 1 the full "
                   "style (default: 1; keys [ and ] in the window)")
    p.add_argument("--preserve-colors", nargs="?", const="luminance", default=None, choices=COLOR_MODES,
                   metavar="MODE", help="keep the camera's colours: 'luminance' (the default MODE) "
                   "paints only the brightness and keeps the camera's hue and saturation; "
                   "'statistics' moves the painting's palette to the camera's average colours; "
                   "'off' paints in the style's own colours (toggle with C in the window)")


def window_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Real-time webcam neural style transfer: opens a window showing your camera "
        "as a painting. Keys: 1-9 / Left / Right choose a style, [ and ] set the strength, C keeps "
        "the camera's colours, Space takes a refined snapshot, R records, M mirrors, B compares "
        "with the camera, T toggles the stabilizer, I in-between frames, V the virtual camera, "
        "F full screen, F1 lists the keys, Esc quits. The window remembers its settings; flags given here win.",
        epilog="Other commands: `nstcam render INPUT -o OUTPUT --style NAME` stylizes a video "
        "file headless; `nstcam styles` lists the installed styles; `nstcam doctor` checks this "
        "machine for what the app needs. Use `nstcam render --help` (and so on) for theirs.",
    )
    p.add_argument("--camera", metavar="SOURCE", default=None,
                   help="frame source: a camera index (0, 1, ...), a video file (played in a "
                   "loop), a stream URL, or 'demo' for the built-in animated scene. Default: "
                   "camera 0; if it cannot be opened the window says so and offers the demo")
    _add_common(p, size_help=f"processing size: the short side, in pixels, frames are "
                f"stylized at; larger looks finer but costs speed (default: {DEFAULT_SIZE_CUDA} "
                f"on CUDA, {DEFAULT_SIZE_CPU} on CPU)")
    p.add_argument("--version", action="version", version=f"%(prog)s {app_version()}")
    p.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=None,
                   help="flip the image horizontally, like a mirror (toggle with M)")
    p.add_argument("--crossfade", action=argparse.BooleanOptionalAction, default=None,
                   help="blend over about 0.3 s from the old style to the new one when the style "
                   "changes, instead of a hard cut (default: on)")
    p.add_argument("--no-inbetween", dest="inbetween", action="store_false", default=None,
                   help="show only the frames the style network stylized; by default, when it is slower "
                   "than the camera, every other camera frame is shown (and recorded and sent to the "
                   "virtual camera) as its latest stylized frame moved along the camera's optical flow, "
                   "so the video keeps the camera's frame rate; after a cut or when that frame is over "
                   "1 s old, the next fresh frame is waited for instead (toggle with I)")
    p.add_argument("--record-size", choices=("camera", "processing"), default=None,
                   help="recordings at the camera's resolution (the stylized frames upscaled, like "
                   "snapshots) or at the processing size; encoding 640x480 costs about 3x the CPU "
                   "of 320x240 (default: camera on CUDA, processing on CPU)")
    p.add_argument("--record", metavar="FILE", default=None,
                   help="start recording the stylized video to FILE at launch (a new name is "
                   "chosen if FILE exists); R stops and starts recordings")
    p.add_argument("--fullscreen", action="store_true", help="start in full screen (toggle with F)")
    p.add_argument("--pictures-dir", metavar="DIR", default=None,
                   help="where snapshots are saved (default: <Pictures>/nstcam); recordings "
                   "started with R go to <Videos>/nstcam")
    p.add_argument("--engine-process", choices=("on", "off"), default="on",
                   help="on a CPU with the torch backend, run the style network in a child process "
                   "(on), where its thread team gets the CPU's full speed, or in a thread of the app "
                   "(off); frames run in the app until the child is ready and if it fails (default: on)")
    p.add_argument("--virtual-camera", metavar="DEVICE", nargs="?", const="", default=None,
                   help="also send the stylized video to a virtual webcam that video-call apps can "
                   "select (1280x720 at 30 fps); DEVICE picks one, e.g. /dev/video10 (default: the "
                   "first free one). Needs v4l2loopback on Linux, OBS Virtual Camera on Windows/macOS")
    # The device and precision last used in the window apply unless given (nstcam.ui.settings).
    p.set_defaults(device=None, precision=None)
    # Hidden: measurement and documentation helpers.
    p.add_argument("--benchmark-seconds", type=number(positive=True), default=None, help=argparse.SUPPRESS)
    p.add_argument("--screenshot", metavar="PNG", default=None, help=argparse.SUPPRESS)
    return p


def render_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"{PROG} render",
        description="Stylize a video file headless, frame by frame, keeping its frame count, each "
        "frame's time (so its length, even at a variable frame rate) and its sound (not in .avi). "
        "Shows a progress bar.",
    )
    p.add_argument("input", metavar="INPUT", help="video file to stylize")
    p.add_argument("-o", "--output", required=True, metavar="OUTPUT",
                   help="output video file: .mp4 (H.264), .mov, .mkv or .avi (MJPG); if it "
                   "exists, a new name (OUTPUT-1.mp4, ...) is chosen")
    _add_common(p, size_help="processing size: the short side, in pixels, frames are stylized "
                "at, and so the output's size (default: the input's own size, up to 1080)")
    return p


def styles_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"{PROG} styles",
        description="List the styles found (name, title, artist, variant, file), then the "
        "style files that failed to load and why.",
    )
    p.add_argument("--styles-dir", metavar="DIR", action="append", default=[],
                   help="extra folder of style files (*.pt); may be repeated")
    p.add_argument("--remove", metavar="NAME", default=None,
                   help="delete the instant style NAME (one made from a picture) instead of listing")
    return p


# ----------------------------------------------------------------------------------------------
# Window


def run_window(args: argparse.Namespace) -> int:
    from nstcam.qtcheck import startup_message

    problem = startup_message()  # Qt would abort (rc 134) on a missing system library: say which
    if problem:
        raise CliError(problem)
    from nstcam.ui.settings import fill_from_settings  # QtCore only: no widgets before validation

    fill_from_settings(args)
    launch = prepare_window(args)
    from nstcam.ui.app import run  # Qt widgets only from here on

    return run(args, launch)


# ----------------------------------------------------------------------------------------------
# render


def run_render(args: argparse.Namespace) -> int:
    from nstcam.live.recorder import RecorderError
    from nstcam.live.render import default_size, render_video
    from nstcam.live.sources import SourceError

    size = check_size(args.size)
    src = Path(args.input).expanduser()
    if not src.exists():
        raise CliError(f"{args.input}: no such video file")
    if src.is_dir():
        raise CliError(f"{args.input}: is a folder, not a video file")
    out = Path(args.output).expanduser()
    if out.is_dir():
        raise CliError(f"-o {args.output}: is a folder; give a file name such as out.mp4")
    if not out.parent.is_dir():
        raise CliError(f"-o {args.output}: folder {out.parent} does not exist")
    if out.resolve() == src.resolve():
        raise CliError("-o: the output would overwrite the input; choose another file name")
    backend = resolve_backend(args.backend)
    device = resolve_device(args.device, backend)
    registry, dirs = load_registry(args.styles_dir, backend)
    style = check_style(registry, args.style, dirs, required=True, backend=backend)
    if size is None:
        size = default_size(src)
    apply_threads(args.threads)
    backend, precision, choice = choose_backend(registry, device, size, style, args.backend, args.precision,
                                                args.threads)
    engine = build_engine(registry, device, size, style, precision, backend, args.threads)
    if choice is not None:
        engine.selection = choice.note()

    from tqdm import tqdm

    bar = tqdm(unit="frame", dynamic_ncols=True, desc=f"{style}", file=sys.stderr)

    def progress(done: int, total: int | None = None, *_: Any) -> None:
        if total and bar.total != total:
            bar.total = total
            bar.refresh()
        bar.update(done - bar.n)

    try:
        processors = make_processors(args.stabilize is not False, look_from_args(args))
        result = render_video(src, out, engine, progress=progress, processors=processors)
    except SourceError as exc:
        raise CliError(str(exc)) from None
    except (RecorderError, OSError, ValueError) as exc:
        raise CliError(f"render failed: {exc}") from None
    finally:
        bar.close()
    w, h = result.size
    print(f"wrote {result.path or out}: {result.frames} frames, {w}x{h}, {result.fps:.4g} fps, "
          f"style {style} on {engine.describe()}")
    return 0


# ----------------------------------------------------------------------------------------------
# styles


def run_styles(args: argparse.Namespace) -> int:
    registry, dirs = load_registry(args.styles_dir, resolve_backend("auto"))
    if args.remove is not None:
        remove_instant(registry, args.remove)
        print(f"removed the instant style {args.remove}")
        return 0
    rows = [(e.name, e.title, e.artist, e.variant, str(e.path)) for e in registry.entries]
    if rows:
        header = ("NAME", "TITLE", "ARTIST", "VARIANT", "FILE")
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
        for r in [header, *rows]:
            print("  ".join(c.ljust(widths[i]) for i, c in enumerate(r[:4])) + "  " + r[4])
    else:
        print("no styles found in: " + ", ".join(str(d) for d in dirs))
    if registry.duplicates:
        print("\nstyles declared by more than one file (--styles-dir wins, then the user styles folder, "
              "then the bundled styles):")
        for message in registry.duplicates:
            print(f"  {message}")
    if registry.errors:
        print(f"\n{len(registry.errors)} file(s) failed to load:")
        for path, reason in registry.errors:
            print(f"  {path}: {reason}")
    return 0


# ----------------------------------------------------------------------------------------------


def _quiet_logs() -> None:
    """Warnings to stderr, except those the CLI reports itself in its own words.

    The registry's "skipping style file" warnings are listed by `nstcam styles` and shown in the
    window; OpenCV's native log would add "[ WARN:0@0.02] cap_v4l.cpp ..." lines next to our
    one-line "camera 3 could not be opened" error.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("nstcam.registry").setLevel(logging.ERROR)
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # read when cv2 is first imported
    if "cv2" in sys.modules:
        try:
            import cv2

            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        except Exception:  # pragma: no cover - very old OpenCV
            pass


COMMANDS = {"render": (render_parser, run_render), "styles": (styles_parser, run_styles)}


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, a service manager) turned into the same clean stop as Ctrl-C: `render`
    finishes the frames it wrote into a playable file and says so in one line."""


def _terminate(_signum: int, _frame: Any) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    prefer_passive_waits()  # before anything loads torch
    prefer_single_thread()  # the app's own threads run in parallel, OpenCV's pool would only wait on them
    _quiet_logs()
    if argv and argv[0] == "doctor":
        from nstcam.doctor import main as doctor

        return doctor(argv[1:])
    if argv and argv[0] in COMMANDS:
        make_parser, command = COMMANDS[argv[0]]
        argv = argv[1:]
    else:
        make_parser, command = window_parser, run_window
    parser = make_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, message already printed)
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    if getattr(args, "verbose", False):
        logging.getLogger("nstcam").setLevel(logging.INFO)
        logging.getLogger("trainer").setLevel(logging.INFO)
    previous = signal.signal(signal.SIGTERM, _terminate)  # the window installs its own while it is open
    try:
        return command(args)
    except CliError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        print(f"{PROG}: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    raise SystemExit(main())
