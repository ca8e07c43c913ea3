"""`nstcam doctor`: what on this machine stops the app, and what only limits it.

Each check prints one line: `ok`, `info`, `warn` (the app runs, with less: no camera, no GPU, no
virtual camera) or `FAIL` (the app cannot run: the Qt window cannot open, no engine backend, no
style loads). Exit status 0 when nothing failed, 1 otherwise. A check that crashes is reported as
its own line, never as a traceback. Imports are lazy, so the doctor also runs in a torch-free
(lite) build and without PySide6, and never imports Qt's GUI modules.
"""
from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

OK, INFO, WARN, FAIL = "ok", "info", "warn", "FAIL"
CAMERA_INDICES = 5  # probe 0-4
CAMERA_TIMEOUT_S = 8.0
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str


@dataclass(frozen=True)
class Context:
    """What the checks need from the command line."""

    styles_dirs: tuple[Path, ...] = ()
    cameras: int = CAMERA_INDICES


def has_module(name: str) -> bool:
    """Whether `name` can be imported, found without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


# ----------------------------------------------------------------------------------------------
# The checks: each returns one Check (or several) and may raise; `run_checks` turns a raise into a line.


def check_qt(ctx: Context) -> list[Check]:
    from nstcam import qtcheck

    result = qtcheck.check_xcb()
    if result.skipped:
        return [Check("Qt window", OK, f"no xcb check needed ({result.skipped})")]
    if not result.ok:
        return [Check("Qt window", FAIL, qtcheck.describe(result))]
    plugin = Check("Qt window", OK, f"the xcb platform plugin and its libraries load ({result.plugin})")
    display = qtcheck.display_problem()
    return [plugin, Check("display", WARN, display)] if display else [plugin]


def probe_cameras(count: int) -> list[int]:
    """Camera indices below `count` that OpenCV opens (on Linux only those with a /dev/videoN)."""
    import cv2

    found = []
    for index in range(count):
        if sys.platform.startswith("linux") and not Path(f"/dev/video{index}").exists():
            continue
        backend = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        cap = cv2.VideoCapture(index, backend)
        try:
            if cap.isOpened():
                found.append(index)
        finally:
            cap.release()
    return found


def check_cameras(ctx: Context) -> list[Check]:
    result: list[list[int]] = []
    worker = threading.Thread(target=lambda: result.append(probe_cameras(ctx.cameras)), daemon=True,
                              name="doctor-cameras")
    worker.start()
    worker.join(CAMERA_TIMEOUT_S)
    span = f"0-{ctx.cameras - 1}" if ctx.cameras > 1 else "0"
    if not result:
        return [Check("cameras", WARN, f"probing cameras {span} did not finish in {CAMERA_TIMEOUT_S:.0f} s "
                      "(a driver is stuck?); try --camera demo or a video file")]
    if not result[0]:
        return [Check("cameras", WARN, f"no camera opens at indices {span}; the app can still run on "
                      "--camera demo or a video file")]
    return [Check("cameras", OK, "opens at " + ", ".join(f"--camera {i}" for i in result[0]))]


def _ort_providers() -> list[str] | None:
    if not has_module("onnxruntime"):
        return None
    import onnxruntime as ort

    return list(ort.get_available_providers())


def check_engines(ctx: Context) -> list[Check]:
    parts = []
    if has_module("torch"):
        import torch

        parts.append(f"torch {torch.__version__}")
    providers = _ort_providers()
    if providers is not None:
        import onnxruntime as ort

        names = ", ".join(p.removesuffix("ExecutionProvider") for p in providers)
        parts.append(f"onnxruntime {ort.__version__} ({names})")
    if not parts:
        return [Check("engine", FAIL, "neither torch nor onnxruntime is installed: pip install onnxruntime "
                      "(the light runtime) or torch")]
    return [Check("engine", OK, "; ".join(parts))]


def check_gpu(ctx: Context) -> list[Check]:
    providers = _ort_providers() or []
    ort_cuda = "CUDAExecutionProvider" in providers
    if has_module("torch"):
        import torch

        build = f"torch built for CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only torch"
        if torch.cuda.is_available():
            names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
            return [Check("GPU / CUDA", OK, f"{names} ({build})")]
        hint = "" if torch.version.cuda else "; a CUDA build of torch would use an NVIDIA GPU"
        return [Check("GPU / CUDA", INFO, f"no CUDA device ({build}){hint}: styles run on the CPU")]
    if ort_cuda:
        return [Check("GPU / CUDA", OK, "CUDA through onnxruntime-gpu")]
    return [Check("GPU / CUDA", INFO, "no CUDA (onnxruntime CPU build): styles run on the CPU")]


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def check_bf16(ctx: Context) -> list[Check]:
    if not has_module("torch"):
        native = bool(cpu_flags() & set(BF16_FLAGS))
        return [Check("CPU bf16", INFO, f"{'native' if native else 'no native'} bf16 on this CPU; unused here: "
                      "without torch, ONNX Runtime runs the styles in fp32")]
    from trainer.devices import cpu_bf16_supported

    if cpu_bf16_supported():
        return [Check("CPU bf16", OK, "native bf16 (AVX512-BF16 / AMX): the torch engine runs bf16 on the CPU, "
                      "about twice its fp32 frame rate")]
    return [Check("CPU bf16", INFO, "no native bf16 on this CPU: the torch engine runs fp32 on the CPU")]


def check_backend_choice(ctx: Context) -> list[Check]:
    """What `--backend auto` measured and chose on this machine (nstcam.engines.choice)."""
    import os

    from nstcam.engines.choice import remembered_here

    made = remembered_here(os.cpu_count() or 1)
    if not made:
        return [Check("backend choice", INFO, "none measured yet: the first window launch (--backend auto) "
                      "times torch and ONNX Runtime for the style's network and size and keeps the fastest")]
    lanes = "; ONNX Runtime runs and is timed with two frames in flight, a thread each" if (os.cpu_count() or 1) > 1 else ""
    return [Check("backend choice", INFO, f"{where}: {choice.reason()}{lanes}") for where, choice in made]


def check_quick_start(ctx: Context) -> list[Check]:
    """Whether the window can show its first frames without importing torch (nstcam.autobackend)."""
    if not (has_module("torch") and has_module("onnxruntime")):
        return []  # one runtime only: there is nothing to start without
    from nstcam.autobackend import trained_style_files
    from nstcam.engines.quick_start import missing_exports

    missing = missing_exports(trained_style_files(style_dirs([d for d in ctx.styles_dirs if d.is_dir()])))
    if not missing:
        return [Check("quick start", OK, "every style has a current ONNX export: once a backend choice is "
                      "remembered, the window shows its first frames without importing torch")]
    names = ", ".join(p.name for p in missing[:4]) + (" …" if len(missing) > 4 else "")
    return [Check("quick start", INFO, f"{len(missing)} style file(s) without a current ONNX export ({names}): "
                  "the window exports them while it runs (in the background, or each on its style's "
                  "first frame where ONNX Runtime was chosen; or now: python -m nstcam.export STYLE...); "
                  "it starts without torch once a backend choice is remembered and its launch style has one")]


def check_virtual_camera(ctx: Context) -> list[Check]:
    if not has_module("pyvirtualcam"):
        return [Check("virtual camera", WARN, "pyvirtualcam is not installed (pip install pyvirtualcam): "
                      "--virtual-camera is unavailable")]
    from nstcam.live.virtualcam import VirtualCameraUnavailable, open_camera

    try:
        camera = open_camera(size=(64, 48), fps=5.0)
    except VirtualCameraUnavailable as exc:
        return [Check("virtual camera", WARN, str(exc))]
    device = camera.device
    camera.close()
    return [Check("virtual camera", OK, f"{device} opens")]


def style_dirs(extra: Sequence[Path]) -> list[Path]:
    """The bundled styles, the user styles folder, then `extra` (the app's search order)."""
    from nstcam.launch import user_styles_folders
    from nstcam.registry import bundled_styles_dir

    return [bundled_styles_dir(), *user_styles_folders(), *extra]


def check_styles(ctx: Context) -> list[Check]:
    from nstcam.registry import StyleRegistry

    missing = [d for d in ctx.styles_dirs if not d.is_dir()]
    dirs = style_dirs([d for d in ctx.styles_dirs if d.is_dir()])
    # Without torch, the app runs the styles' ONNX exports (nstcam.launch.load_registry).
    runtime, kind = ("torch", "style files (*.pt)") if has_module("torch") else ("onnx", "exported styles (*.onnx)")
    registry = StyleRegistry.discover(dirs, runtime=runtime)
    names = registry.names()
    lines = [Check("styles", WARN, f"--styles-dir {d}: no such folder") for d in missing]
    lines += [Check("styles", INFO, message) for message in registry.duplicates]
    lines += [Check("styles", WARN, f"{path}: {reason}") for path, reason in registry.errors]
    where = ", ".join(str(d) for d in dirs)
    if not names:
        return [Check("styles", FAIL, f"no {kind} load from {where}")] + lines
    return [Check("styles", OK, f"{len(names)}: {', '.join(names)}")] + lines


def writable_folder(folder: Path) -> tuple[bool, str]:
    """Whether `folder` is (or can be created as) a writable folder, and why not."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            return False, f"{folder}: no existing parent folder"
        probe = probe.parent
    if not probe.is_dir():
        return False, f"{folder}: {probe} is a file, not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return False, f"{folder}: {probe} is not writable"
    return True, ""


# What puts each output folder elsewhere, in the doctor's advice.
FOLDER_FIXES = {
    "snapshots": "pass --pictures-dir DIR",
    "recordings": "pass --record FILE",
    "user styles": "set XDG_DATA_HOME (APPDATA on Windows)",
}


def home_folder() -> tuple[Path | None, str]:
    """The home folder the user's folders default to (None when none is known) and, when it
    cannot hold them, why."""
    try:
        home = Path.home()
    except RuntimeError:  # HOME unset and no home in the user database (a service account)
        return None, "HOME is unset and this user has no home folder"
    if not home.is_dir():
        return home, f"the home folder {home} does not exist"
    return home, ""


def output_folders() -> dict[str, Path | None]:
    """Where snapshots, recordings and trained styles go; None where that needs a home folder
    and there is none."""
    from nstcam.host.userdirs import pictures_dir, user_styles_dir, videos_dir

    folders: dict[str, Path | None] = {}
    for name, where in (("snapshots", pictures_dir), ("recordings", videos_dir), ("user styles", user_styles_dir)):
        try:
            folders[name] = where()
        except RuntimeError:  # Path.home(): no home folder
            folders[name] = None
    return folders


def check_outputs(ctx: Context) -> list[Check]:
    folders = output_folders()
    home, why_not = home_folder()
    homeless = [name for name, folder in folders.items()
                if folder is None or (why_not and home is not None and home in folder.parents)]
    lines = []
    if homeless:
        fixes = "; ".join(f"{FOLDER_FIXES[name]} for {name}" for name in homeless)
        lines.append(Check("output folders", WARN, f"{why_not}, so {', '.join(homeless)} have nowhere to go: "
                           f"set HOME to an existing folder, or {fixes}"))
    for name, folder in folders.items():
        if name in homeless:
            continue
        ok, problem = writable_folder(folder)
        if not ok:
            lines.append(Check("output folders", WARN, f"{problem}; {FOLDER_FIXES[name]} to put {name} elsewhere"))
    return lines or [Check("output folders", OK, ", ".join(f"{k} {v}" for k, v in folders.items()))]


CHECKS: tuple[tuple[str, Callable[[Context], list[Check]], bool], ...] = (
    # (name, check, whether a crash of the check itself means the app cannot run)
    ("Qt window", check_qt, True),
    ("engine", check_engines, True),
    ("GPU / CUDA", check_gpu, False),
    ("CPU bf16", check_bf16, False),
    ("backend choice", check_backend_choice, False),
    ("quick start", check_quick_start, False),
    ("styles", check_styles, True),
    ("cameras", check_cameras, False),
    ("virtual camera", check_virtual_camera, False),
    ("output folders", check_outputs, False),
)


def run_checks(ctx: Context, checks: Sequence[tuple[str, Callable[[Context], list[Check]], bool]] = CHECKS) -> list[Check]:
    results: list[Check] = []
    for name, check, vital in checks:
        try:
            results.extend(check(ctx))
        except Exception as exc:  # a check must never end the report
            log.debug("check %s crashed", name, exc_info=True)
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            results.append(Check(name, FAIL if vital else WARN,
                                 f"the check itself failed ({type(exc).__name__}{': ' + reason if reason else ''})"))
    return results


def report(results: Sequence[Check]) -> str:
    width = max((len(c.name) for c in results), default=0)
    lines = [f"  {c.status:<4}  {c.name:<{width}}  {c.detail}" for c in results]
    failed = sum(c.status == FAIL for c in results)
    warned = sum(c.status == WARN for c in results)
    if failed:
        lines.append(f"nstcam cannot run here: fix the {failed} FAIL line(s) above")
    else:
        lines.append("nstcam can run here" + (f" ({warned} warning(s) above)" if warned else ""))
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nstcam doctor",
        description="Check this machine for what nstcam needs and report, one line per check: the Qt "
        "window's system libraries, the engine backends (torch, onnxruntime), GPU and CUDA, native "
        "CPU bf16, cameras, the virtual camera, the styles and the output folders. Exit status 0 "
        "when the app can run, 1 when something it needs is missing (a FAIL line).",
    )
    p.add_argument("--styles-dir", metavar="DIR", action="append", default=[],
                   help="extra folder of style files to check, as the app's --styles-dir; may be repeated")
    p.add_argument("--cameras", type=int, default=CAMERA_INDICES, metavar="N",
                   help=f"probe camera indices 0 to N-1 (default: {CAMERA_INDICES}); 0 skips the probe")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """`nstcam doctor [--styles-dir DIR] [--cameras N]`; returns the exit status."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, already printed)
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # no "[ WARN:0] cap_v4l" lines for absent cameras
    logging.getLogger("nstcam.registry").setLevel(logging.ERROR)  # its warnings become our lines
    ctx = Context(tuple(Path(d).expanduser() for d in args.styles_dir), max(0, args.cameras))
    checks = [c for c in CHECKS if c[0] != "cameras" or ctx.cameras > 0]
    results = run_checks(ctx, checks)
    print(report(results))
    return 1 if any(c.status == FAIL for c in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
