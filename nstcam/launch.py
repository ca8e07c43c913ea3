"""What the window and `render` need, prepared and validated before any Qt widget is imported.

Every user error becomes a `CliError` with one line naming the problem and the choices; the CLI
prints it and exits 2. Kept apart from `nstcam.cli` so that the window (nstcam.ui) can use it
without importing the command line, and apart from nstcam.ui so that nothing here needs Qt.

Styles are looked up in, in order (a later folder's style of the same name and variant wins):
the bundled styles, the user styles folder (nstcam.host.userdirs) and `--styles-dir`.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Processing short side of the live view: what a CPU keeps interactive vs. what a GPU affords.
DEFAULT_SIZE_CUDA = 480
DEFAULT_SIZE_CPU = 240
BACKENDS = ("auto", "torch", "onnxruntime")
MAX_SIZE = 2160  # short side of 4K UHD; larger sizes need tens of GB per frame
MIN_SIZE = 32  # below this a frame is no picture (and OpenCV's optical flow refuses it)


PROG = "nstcam"


_IMPORTED = time.monotonic()


def seconds_since_start() -> float:
    """Seconds since this process started (Linux: from /proc, so interpreter start-up and imports
    count too); elsewhere since this module was imported."""
    try:
        with open("/proc/self/stat") as f:
            started = int(f.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
        with open("/proc/uptime") as f:
            return float(f.read().split()[0]) - started
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _IMPORTED


class CliError(Exception):
    """A user error: the message is printed as is after "nstcam: error:" and the exit status is 2."""


def user_styles_folders() -> list[Path]:
    """The user styles folder; none where there is no home folder to hold it (a service account
    without HOME), so the bundled and --styles-dir styles still load."""
    from nstcam.host.userdirs import user_styles_dir

    try:
        return [user_styles_dir()]
    except RuntimeError:  # Path.home(): no home folder
        return []


def style_dirs(extra: Sequence[str]) -> list[Path]:
    from nstcam.registry import bundled_styles_dir

    dirs = [bundled_styles_dir(), *user_styles_folders()]
    for d in extra:
        path = Path(d).expanduser()
        try:
            missing = not path.is_dir()
        except OSError:  # in a folder this user may not enter: the registry names it and goes on
            missing = False
        if missing:
            raise CliError(f"--styles-dir {d}: no such folder")
        dirs.append(path)
    return dirs


def _installed(module: str) -> bool:
    """Whether `module` imports (it is imported next anyway, so this costs nothing extra)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def _available(module: str) -> bool:
    """Whether `module` is installed, without importing it (ONNX Runtime costs a tenth of a second)."""
    return importlib.util.find_spec(module) is not None


def resolve_backend(name: str | None) -> str:
    """"torch" or "onnxruntime" for `--backend auto|torch|onnxruntime` (auto: torch if installed)."""
    name = name or "auto"
    if name == "auto":
        name = "torch" if _installed("torch") else "onnxruntime"
    if name == "torch" and not _installed("torch"):
        raise CliError("--backend torch: PyTorch is not installed here; use --backend onnxruntime "
                       "(the desktop bundle's runtime) or install torch")
    if name == "onnxruntime" and not _installed("onnxruntime"):
        raise CliError("--backend onnxruntime: ONNX Runtime is not installed; `pip install onnxruntime` "
                       "(onnxruntime-gpu for CUDA), or use --backend torch")
    return name


def load_registry(extra_dirs: Sequence[str], backend: str = "torch"):
    """The styles and the folders searched. Without torch, the styles' ONNX exports are read
    instead: those next to the style files and those in the user cache (nstcam.engines.onnx_export)."""
    from nstcam.registry import StyleRegistry

    dirs = style_dirs(extra_dirs)
    if backend == "onnxruntime" and not _installed("torch"):
        from nstcam.engines.onnx_export import cache_dir

        return StyleRegistry.discover([cache_dir(), *dirs], runtime="onnx"), dirs
    return StyleRegistry.discover(dirs), dirs


def resolve_device(name: str, backend: str = "torch"):
    """The device to run on (an object with `.type`: "cpu" or "cuda"); CliError if unusable."""
    if backend == "onnxruntime" and not _installed("torch"):
        from nstcam.engines.ort import resolve_device as ort_resolve
    else:
        from trainer.devices import resolve_device as ort_resolve  # torch's view of the devices

    try:
        return ort_resolve(name)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def check_style(registry, style: str | None, dirs: Sequence[Path], required: bool = False,
                backend: str = "torch") -> str:
    """The style to start with; a picture file becomes an instant style, encoded on `backend`."""
    names = registry.names()
    if style is not None and style not in names and Path(style).expanduser().is_file():
        return add_picture_style(registry, Path(style).expanduser(), backend)
    if not names:
        where = ", ".join(str(d) for d in dirs)
        broken = f" ({len(registry.errors)} file(s) failed to load: see `nstcam styles`)" if registry.errors else ""
        raise CliError(f"no styles found in {where}{broken}; add style files (*.pt) there or pass --styles-dir DIR")
    if style is None:
        if required:
            raise CliError(f"--style is required; available styles: {', '.join(names)}")
        return names[0]
    if style not in names:
        broken = [bad for bad in registry.broken if bad.name == style]
        if broken:  # every file of this style failed to load: say why, not "unknown"
            raise CliError(f"style {style!r}: {broken[0].path}: {broken[0].reason}")
        raise CliError(f"unknown style {style!r}; available styles: {', '.join(names)}")
    return style


def add_picture_style(registry, picture: Path, backend: str = "torch") -> str:
    """`--style PICTURE`: the picture's instant style (nstcam.jobs.instant_style), made in the user
    styles folder (or the one made before from the same picture) and added to `registry`; encoded
    on ONNX Runtime when that is the `backend` (the lite bundle: no torch)."""
    from nstcam.engines.instant_onnx import InstantUnavailable
    from nstcam.host.userdirs import user_styles_dir
    from nstcam.jobs.instant_style import PictureError, style_from_picture

    try:
        style = style_from_picture(picture, user_styles_dir(), taken=registry.names(), runtime=backend)
    except PictureError as exc:
        raise CliError(f"--style {exc}") from None
    except InstantUnavailable as exc:
        raise CliError(f"--style {picture}: {exc}") from None
    except OSError as exc:
        raise CliError(f"--style {picture}: cannot write the style to {user_styles_dir()} ({exc})") from None
    return registry.add(style.path, style).name


def remove_instant(registry, name: str) -> None:
    """Delete the instant style `name` and its ONNX exports; CliError for any other style."""
    from nstcam.engines.instant import VARIANT
    from nstcam.jobs.instant_style import remove_instant_style

    entries = registry.variants(name)
    instant = [e for e in entries if e.variant == VARIANT]
    if not instant:
        kind = "a trained style, not an instant one" if entries else "no such style"
        raise CliError(f"--remove {name}: {kind}; instant styles: "
                       f"{', '.join(e.name for e in registry.entries if e.variant == VARIANT) or 'none'}")
    try:
        remove_instant_style(instant[0].model)
    except OSError as exc:
        raise CliError(f"--remove {name}: cannot delete {instant[0].path} ({exc})") from None


def check_size(size: int | None) -> int | None:
    if size is not None and not MIN_SIZE <= size <= MAX_SIZE:
        bound = f"at most {MAX_SIZE}" if size > MAX_SIZE else f"at least {MIN_SIZE}"
        raise CliError(f"--size {size}: too {'large' if size > MAX_SIZE else 'small'}; the processing size "
                       f"is the short side in pixels, {bound} (try 240 on a CPU, 480-1080 on a GPU)")
    return size


def apply_threads(threads: int | None) -> None:
    """torch's CPU threads (the ONNX Runtime engine gets `threads` itself)."""
    if threads and _installed("torch"):
        import torch

        torch.set_num_threads(threads)


def build_engine(registry, device, size: int | None, style: str, precision: str = "auto",
                 backend: str = "torch", threads: int | None = None):
    from nstcam.host.malloc import keep_freed_memory

    keep_freed_memory()  # before the first frame: every later frame then reuses its pages
    for message in registry.fallbacks(style, device.type):  # a broken file of this style was skipped
        print(f"{PROG}: warning: {message}", file=sys.stderr)
    try:
        if backend == "onnxruntime":
            engine = _onnx_engine(registry, device, size, precision, threads, style)
        else:
            from nstcam.engines.torch_engine import StyleEngine

            engine = StyleEngine(registry.select(device.type), device=str(device), size=size, precision=precision)
        engine.set_style(style)
    except (RuntimeError, ValueError, OSError) as exc:
        raise CliError(f"cannot start the style engine on {device}: {exc}") from None
    return engine


def _onnx_engine(registry, device, size: int | None, precision: str, threads: int | None, style: str):
    """ONNX Runtime over the registry's styles: their ONNX exports, made (once, cached) from the
    style files where torch is installed: `style`'s now, each other one's on its first frame."""
    from nstcam.engines.instant import InstantStyle
    from nstcam.engines.ort import OnnxStyle, OnnxStyleEngine

    if precision not in ("auto", "fp32", "int8"):  # int8: only as --backend auto's measured choice
        raise CliError(f"--precision {precision}: the onnxruntime backend runs fp32; use --backend torch for {precision}")
    quantization = "int8" if precision == "int8" else "fp32"
    frames = None
    if quantization == "int8":
        from nstcam.live.demo import calibration_frames

        frames = calibration_frames()
    models = {}
    for name, model in registry.select(device.type).items():
        if isinstance(model, (OnnxStyle, InstantStyle)):  # instant: MicroAST's shared graph, no export
            models[name] = model
        else:
            from nstcam.engines.onnx_export import ensure_onnx, late_onnx

            models[name] = (ensure_onnx if name == style else late_onnx)(model.path, quantization, frames)
    return OnnxStyleEngine(models, device=device.type, size=size, threads=threads)


def choose_backend(registry, device, size: int | None, style: str, backend_arg: str | None,
                   precision: str | None, threads: int | None):
    """(backend, precision, Choice or None). `--backend auto` with `--precision auto` on a CPU
    where both torch and ONNX Runtime are installed runs what measured fastest for the style's
    network at `size` (nstcam.autobackend); an explicit backend or precision wins, as before."""
    backend, precision = resolve_backend(backend_arg), precision or "auto"
    if ((backend_arg or "auto") != "auto" or precision != "auto" or size is None or device.type != "cpu"
            or not _available("onnxruntime") or backend != "torch"):
        return backend, precision, None
    from nstcam.autobackend import auto_choice

    try:
        choice = auto_choice(registry.select("cpu")[style], size, threads or os.cpu_count() or 1)
    except Exception as exc:  # an export or a candidate that fails to run: torch, as before auto existed
        print(f"{PROG}: warning: could not time the backends ({exc}); using torch", file=sys.stderr)
        return backend, precision, None
    return choice.chosen.backend, choice.chosen.precision, choice


def make_stabilizer():
    """The runtime temporal stabilizer (a frame processor)."""
    from nstcam.live.stabilize import FlowStabilizer

    return FlowStabilizer()


def make_processors(stabilize: bool, look=None) -> list:
    """The frame processors `render` runs after the engine, in order: the stabilizer, then the
    output controls (nstcam.live.controls.Look: strength, colours) unless they change nothing."""
    from nstcam.live.controls import OutputControls

    processors = [make_stabilizer()] if stabilize else []
    if look is not None and not look.neutral:
        processors.append(OutputControls(look=look))
    return processors


def look_from_args(args: argparse.Namespace):
    """--strength and --preserve-colors as a nstcam.live.controls.Look (not given: full strength, own colours)."""
    from nstcam.live.controls import Look

    strength = getattr(args, "strength", None)
    return Look(1.0 if strength is None else strength, getattr(args, "preserve_colors", None) or "off")


def app_version() -> str:
    """nstcam's version from the installed package's metadata (`nstcam --version`, the About box)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nstcam")
    except PackageNotFoundError:
        return "unknown (not installed)"


def open_virtual_camera(device: str | None):
    """The virtual camera sink for `--virtual-camera [DEVICE]`; CliError says what to install."""
    from nstcam.live.virtualcam import VirtualCameraSink, VirtualCameraUnavailable

    try:
        return VirtualCameraSink(device=device)
    except VirtualCameraUnavailable as exc:
        raise CliError(f"--virtual-camera: {exc}") from None


@dataclass
class Launch:
    """Everything the window needs, prepared and validated before Qt widgets are imported."""

    args: argparse.Namespace
    registry: Any
    engine: Any
    device: Any
    style: str
    camera: str
    camera_explicit: bool
    size: int
    record_path: Path | None = None
    pictures_dir: Path | None = None
    style_dirs: list[Path] = field(default_factory=list)
    virtual_camera: Any = None  # a VirtualCameraSink opened at launch, or None
    background: Any = None  # exports for a torch-free start next time (nstcam.engines.quick_start), or None


def _remembered_launch(args: argparse.Namespace):
    """The launch remembered for the window's style and size (nstcam.autobackend.remembered_launch),
    when it runs without torch in this process: ONNX Runtime, or torch in the engine process
    (which ONNX Runtime stands in for until it is ready); else None."""
    if ((args.backend or "auto") != "auto" or (args.precision or "auto") != "auto"
            or (args.device or "auto") not in ("auto", "cpu") or not _available("onnxruntime")):
        return None
    from nstcam.autobackend import remembered_launch

    remembered = remembered_launch(style_dirs(args.styles_dir), check_size(args.size) or DEFAULT_SIZE_CPU,
                                   args.threads or os.cpu_count() or 1, args.style)
    if remembered is None or (remembered.choice.chosen.backend == "torch" and args.engine_process != "on"):
        return None
    return remembered


def prepare_window(args: argparse.Namespace, remembered_ok: bool = True) -> Launch:
    """Validate the window's arguments and build the engine; raises CliError. `remembered_ok`:
    may start from the remembered choice without torch (not when that engine failed to start)."""
    remembered = _remembered_launch(args) if remembered_ok else None
    if remembered is not None:  # no torch here before the first frame
        from nstcam.engines.ort import OrtDevice

        registry, choice, backend, device = remembered.registry, remembered.choice, "onnxruntime", OrtDevice("cpu")
        dirs = style_dirs(args.styles_dir)
    else:
        backend = resolve_backend(args.backend)
        device = resolve_device(args.device or "auto", backend)
        registry, dirs = load_registry(args.styles_dir, backend)
    style = check_style(registry, args.style, dirs, backend=backend)
    size = check_size(args.size) or (DEFAULT_SIZE_CUDA if device.type == "cuda" else DEFAULT_SIZE_CPU)

    camera_explicit = args.camera is not None
    camera = str(args.camera) if camera_explicit else "0"
    if camera_explicit:
        from nstcam.live.sources import SourceError, open_source, parse_source

        try:
            if parse_source(camera) != "demo":
                open_source(camera).release()  # probe: fail now, with a message, not in the window
        except SourceError as exc:
            raise CliError(f"--camera {camera}: {exc}") from None

    record_path = None
    if args.record:
        record_path = Path(args.record).expanduser()
        if record_path.is_dir():
            raise CliError(f"--record {args.record}: is a folder; give a file name such as clip.mp4")
        if not record_path.parent.is_dir():
            raise CliError(f"--record {args.record}: folder {record_path.parent} does not exist")

    pictures = None
    if args.pictures_dir:
        pictures = Path(args.pictures_dir).expanduser()
        if pictures.exists() and not pictures.is_dir():
            raise CliError(f"--pictures-dir {args.pictures_dir}: exists and is not a folder")

    precision = args.precision or "auto"
    if remembered is None:
        apply_threads(args.threads)
        backend, precision, choice = choose_backend(registry, device, size, style, args.backend, precision,
                                                    args.threads)
    try:
        engine = build_engine(registry, device, size, style, precision, backend, args.threads)
    except CliError as exc:
        if remembered is None:
            raise
        print(f"{PROG}: warning: {exc}; starting with torch instead (delete a damaged .onnx file to have "
              "it exported again)", file=sys.stderr)
        return prepare_window(args, remembered_ok=False)
    if choice is not None:
        engine.selection = choice.note()
    torch_in_child = remembered is not None and choice.chosen.backend == "torch"
    if device.type == "cpu" and args.engine_process == "on" and (backend == "torch" or torch_in_child):
        from nstcam.engines.process import ProcessEngine

        if not torch_in_child:
            engine = ProcessEngine(engine, threads=args.threads)
        else:  # ONNX Runtime shows the first frames while the engine process loads torch
            engine = ProcessEngine(engine, threads=args.threads, sources=remembered.sources,
                                   precision=choice.chosen.precision)
    background = None
    if remembered is None and choice is not None and choice.chosen.backend == "torch":
        # decided with torch here: the next launch need not (ONNX Runtime's engine exports each
        # style on its first frame, the thumbnails' if not the user's)
        from nstcam.autobackend import trained_style_files
        from nstcam.engines.quick_start import BackgroundExport

        background = BackgroundExport(trained_style_files(dirs))
    virtual_camera = open_virtual_camera(args.virtual_camera or None) if args.virtual_camera is not None else None
    return Launch(args, registry, engine, device, style, camera, camera_explicit, size,
                  record_path, pictures, dirs, virtual_camera, background)
