"""The torch-free style engine: the same job and interface as `nstcam.engines.torch_engine.StyleEngine`, on ONNX Runtime.

It runs the ONNX exports of the style files (`nstcam.engines.onnx_export`), which take BGR uint8 frames
and return RGB uint8, so a frame costs one resize (cv2, as StyleEngine does on the CPU), an edge
pad to the graph's side multiple, the network and a crop. Nothing here imports torch: a bundle
with exported styles runs without it (the "lite" desktop build). On CPU it measured 1.3-1.9x
torch fp32 eager on the bundled light network (2 cores); torch bf16 on a CPU with native bf16 is
faster still, which is why torch stays the default where it is installed.

Every style gets its own InferenceSession up front (switching style between frames costs
nothing). With onnxruntime-gpu, "auto" runs on CUDA; a failure there moves the engine to the CPU
and `on_notice` tells the user, as StyleEngine does.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from nstcam.engines.api import DEFAULT, EngineBase, _Default, processing_size
from nstcam.engines.instant import InstantStyle
from nstcam.engines.threads import ThreadTuner, thread_choices
from nstcam.resample import resize_to

log = logging.getLogger(__name__)

FORMAT = "nstcam-style-onnx"  # the metadata tag nstcam.engines.onnx_export writes
DEVICES = ("auto", "cpu", "cuda")
CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"
SIDE_MULTIPLE = 4  # the graph's sides: two stride-2 stages
MIN_SIDE = 8  # the quarter-resolution reflection padding needs pixels to reflect
QUANTIZATIONS = ("fp32", "int8", "int8-dynamic")
# Frames in flight at most on the CPU (`OnnxStyleEngine.lanes`): on 2 cores two one-thread callers
# stylized 1.4-1.6x the frames of one two-thread call (its second thread did 40 % of a core's work);
# each lane beyond adds a frame time of latency in the window for less.
MAX_LANES = 2
SUFFIXES = {"fp32": ".onnx", "int8": ".int8.onnx", "int8-dynamic": ".int8dyn.onnx"}
VARIANT_PREFERENCE = {"cpu": ("light", "full"), "cuda": ("full", "light")}
CODE_INPUT = "code"  # the MicroAST frame graph's second input: an instant style's code (nstcam.engines.instant_onnx)
DETAIL_INPUT = "detail"  # ... and its third: the style's fine-luma amount, shape (1,)


@dataclass(frozen=True)
class OrtDevice:
    """Where the sessions run; `type` is "cpu" or "cuda", like torch.device's."""

    type: str

    def __str__(self) -> str:
        return self.type


@dataclass
class OnnxStyle:
    """An exported style found on disk: its session and the metadata stored in the file."""

    name: str
    path: Path
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def variant(self) -> str:
        return self.meta.get("variant", "full")

    @property
    def label(self) -> str:
        text = self.meta.get("title") or self.name.replace("_", " ").title()
        if self.meta.get("artist"):
            text += f" — {self.meta['artist']}"
        if self.meta.get("year"):
            text += f" ({self.meta['year']})"
        return text


@dataclass
class LateExport(OnnxStyle):
    """A style whose graph is exported when it first runs, not before the first frame: an int8
    export takes about 2 s on 2 cores, and a first launch exporting every style before showing
    one waited 11 s for five styles it might never show. `make()` writes `path`; `meta` is what
    the export will record about the style."""

    make: Callable[[], Path] = field(kw_only=True)


def pad_frame(frame: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """(`frame` edge-padded at the bottom and right to sides the graph accepts, its original (h, w)).

    The same padding TransformerNet.forward applies (replicate) before its two stride-2 stages.
    """
    h, w = frame.shape[:2]
    ph = max(MIN_SIDE, h + (-h) % SIDE_MULTIPLE) - h
    pw = max(MIN_SIDE, w + (-w) % SIDE_MULTIPLE) - w
    if ph or pw:
        frame = cv2.copyMakeBorder(frame, 0, ph, 0, pw, cv2.BORDER_REPLICATE)
    return frame, (h, w)


def export_quantization(path: Path) -> str:
    """The quantization an exported style's file name says ("fp32" for a plain `.onnx`)."""
    return next((q for q, suffix in SUFFIXES.items() if q != "fp32" and path.name.endswith(suffix)), "fp32")


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def resolve_device(name: str = "auto") -> OrtDevice:
    """"auto" prefers CUDA (onnxruntime-gpu); "cuda" without it is an error, not a silent CPU run."""
    name = str(name).split(":")[0]
    if name not in DEVICES:
        raise ValueError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    has_cuda = CUDA in available_providers()
    if name == "cuda" and not has_cuda:
        raise ValueError("no CUDA execution provider in this onnxruntime (install onnxruntime-gpu "
                         "and a CUDA driver); use --device cpu")
    return OrtDevice("cuda" if name == "cuda" or (name == "auto" and has_cuda) else "cpu")


def session_options(threads: int | None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.inter_op_num_threads = 1
    if threads:
        opts.intra_op_num_threads = threads
    # Idle pool threads sleep instead of spinning: the capture, UI and encoder threads need the
    # cores between frames.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts


def open_session(path: Path, device: OrtDevice, threads: int | None = None):
    """An InferenceSession for `path` on `device`; ValueError naming the file if it is no nstcam export."""
    import onnxruntime as ort

    providers = [CUDA, CPU] if device.type == "cuda" else [CPU]
    try:
        session = ort.InferenceSession(str(path), session_options(threads), providers=providers)
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph/NoSuchFile types
        detail = _first_line(exc).replace(str(path), Path(path).name)  # ORT repeats the path: say it once
        raise ValueError(f"{path}: not a loadable ONNX model ({detail})") from None
    meta = dict(session.get_modelmeta().custom_metadata_map)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not an nstcam style export (no '{FORMAT}' metadata); "
                         "export style files with `python -m nstcam.export`")
    return session


def read_style(path: Path) -> OnnxStyle:
    """The metadata of an exported style (ValueError naming the file if it is no nstcam export).

    Read from the file, not from an InferenceSession: a session costs 50-100 ms a style, and a
    launch reads every style before its first frame; the engine opens the ones it runs."""
    from nstcam.engines.onnx_metadata import read_metadata

    meta = read_metadata(path)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not an nstcam style export (unreadable, or no '{FORMAT}' metadata); "
                         "export style files with `python -m nstcam.export`")
    return OnnxStyle(name=meta.get("name") or path.stem.split(".")[0], path=path, meta=meta)


def discover(dirs: Iterable[Path | str], quantization: str = "fp32",
             device_type: str = "cpu") -> tuple[dict[str, OnnxStyle], list[tuple[Path, str]]]:
    """Exported styles in `dirs` (one per name, the variant suited to `device_type`; a later
    folder wins for the same name and variant) and the files that failed, with why.

    `quantization` "fp32" reads `*.onnx` but not the int8 exports beside them, "int8" only
    `*.int8.onnx`, "int8-dynamic" only `*.int8dyn.onnx`.
    """
    found: dict[tuple[str, str], OnnxStyle] = {}
    errors: list[tuple[Path, str]] = []
    for folder in (Path(d).expanduser() for d in dirs):
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.onnx")):
            if export_quantization(path) != quantization:
                continue
            try:
                style = read_style(path)
            except ValueError as exc:
                errors.append((path, str(exc)))
                continue
            found[(style.name, style.variant)] = style
    prefer = VARIANT_PREFERENCE.get(device_type.split(":")[0], VARIANT_PREFERENCE["cpu"])
    chosen: dict[str, OnnxStyle] = {}
    for (name, variant), style in sorted(found.items(), key=lambda kv: prefer.index(kv[0][1])
                                         if kv[0][1] in prefer else len(prefer)):
        chosen.setdefault(name, style)
    return chosen, errors


class OnnxStyleEngine(EngineBase):
    """Stylizes BGR frames into RGB frames with one of several preloaded exported styles.

    Thread-safe like StyleEngine: `stylize` calls are serialised by a lock; `set_style` may be
    called from any thread and takes effect on the next frame. `models` maps style name to its
    ONNX file (or an `OnnxStyle`), or to an `InstantStyle` (run on the shared MicroAST graph);
    `add_style` and `remove_style` change them while frames run. A `LateExport` is exported on
    its style's first frame, outside the frame locks, so the other lanes and the thumbnails go on
    with the styles they have. `threads`: ONNX Runtime's
    intra-op threads (default: cores); on the CPU fewer are used while they measure faster
    (nstcam.engines.threads), each count with its own session, made when first tried. A style's
    session is made when it first runs (50-100 ms each: a launch with six styles would otherwise
    wait for all of them before its first frame).

    Lanes: after `use_lanes(n)` up to n `stylize` calls run at once, each live frame on
    threads // n intra-op threads, so a caller with n threads (the stylize thread, `render`)
    keeps n frames in flight. ONNX Runtime runs one session from several threads at once; with
    one intra-op thread a call computes on its caller's thread, with no barrier between threads
    for a preempted peer to hold up.
    """

    def __init__(
        self,
        models: Mapping[str, Path | str | OnnxStyle | InstantStyle | LateExport],
        device: str = "auto",
        size: int | None = 480,
        on_notice: Callable[[str], None] | None = None,
        threads: int | None = None,
    ) -> None:
        if not models:
            raise ValueError("no styles to run: give at least one exported style (.onnx)")
        self._paths = {name: _graph_path(m) for name, m in models.items()}
        self._codes = {name: _instant_feeds(m) for name, m in models.items() if isinstance(m, InstantStyle)}
        self._late = {m.path: m for m in models.values() if isinstance(m, LateExport)}  # until made
        self._late_failed: dict[Path, Exception] = {}
        self._making = threading.Lock()  # one export at a time
        self._style = next((n for n, p in self._paths.items() if p not in self._late), next(iter(self._paths)))
        super().__init__(size)
        self._threads = threads or os.cpu_count() or 1
        self.on_notice = on_notice
        self._lock = threading.RLock()  # the style and session tables and the tuners
        self._gate = threading.Semaphore(1)  # calls that may run at once: 1, or the lanes in use
        self.notices: list[str] = []
        self._load(resolve_device(device))

    def _load(self, device: OrtDevice) -> None:
        """Open the current style's graph on `device` (the others when they first run)."""
        self._make_late(self._paths[self._style])
        sessions = self._open([self._paths[self._style]], device)
        if device.type == "cuda" and any(CUDA not in s.get_providers() for s in sessions.values()):
            self._notice("the CUDA execution provider did not start; running ONNX Runtime on the CPU")
            device = OrtDevice("cpu")
            sessions = self._open([self._paths[self._style]], device)
        self._device = device
        self._sessions = sessions  # by graph file, as they are first used: the instant styles share one
        self._fewer_threads: dict[tuple[Path, int], object] = {}  # (graph, threads) -> session
        self._tuner = ThreadTuner(thread_choices(self._threads) if device.type == "cpu" else [self._threads],
                                  label="ONNX Runtime threads")
        self._lane_tuner = self._tuner  # one frame at a time until `use_lanes` (CPU only)
        self._describe_graphs()
        log.info("ONNX Runtime engine on %s with %d style(s)", self.describe(), len(self._paths))

    def _open(self, paths: Iterable[Path], device: OrtDevice, known: Mapping[Path, object] | None = None) -> dict:
        """A session per distinct graph file (`known`: sessions already open, reused)."""
        sessions = dict(known or {})
        for path in paths:
            if path not in sessions:
                sessions[path] = open_session(path, device, self._threads)
        return sessions

    def _describe_graphs(self) -> None:
        from nstcam.engines.onnx_metadata import read_metadata

        made = set(self._paths.values()) - set(self._late)
        quantizations = {read_metadata(path).get("quantization", "fp32") for path in made}
        self._precision = "/".join(sorted(quantizations))

    def add_style(self, name: str, model: Path | str | OnnxStyle | InstantStyle) -> None:
        """Add (or replace) a style while frames run: an instant style made from a picture (it
        runs on the shared MicroAST graph with its own code) or an exported style. The style
        tables are swapped whole under the frame lock, so a frame sees the old set or the new one."""
        path = _graph_path(model)
        opened = self._open([path], self._device, self._sessions)  # outside the lock: frames go on meanwhile
        with self._lock:
            self._sessions = {**opened, **self._sessions}  # made now: the new style is shown at once
            self._paths = {**self._paths, name: path}
            codes = {k: v for k, v in self._codes.items() if k != name}
            self._codes = {**codes, name: _instant_feeds(model)} if isinstance(model, InstantStyle) else codes
            self._describe_graphs()
        log.info("style %s added", name)

    def remove_style(self, name: str) -> None:
        """Drop a style (an instant style the user removed); not the style in use."""
        with self._lock:
            if name == self._style:
                raise ValueError(f"style {name!r} is in use; choose another style before removing it")
            self._paths = {k: v for k, v in self._paths.items() if k != name}
            self._codes = {k: v for k, v in self._codes.items() if k != name}
        log.info("style %s removed", name)

    # ----------------------------------------------------------------------------- properties
    @property
    def style(self) -> str:
        return self._style

    @property
    def style_names(self) -> list[str]:
        return list(self._paths)

    @property
    def device(self) -> OrtDevice:
        return self._device

    @property
    def precision(self) -> str:
        """"fp32", "int8" or "int8-dynamic": the number format of the exported graphs."""
        return self._precision

    @property
    def backend(self) -> str:
        return "onnxruntime"

    def describe(self) -> str:
        lanes = f", {self._lanes} frames at once" if self._lanes > 1 else ""
        return self._with_selection(f"{self._device} {self._precision} (ONNX Runtime{lanes})")

    @property
    def lanes(self) -> int:
        """How many frames this engine can usefully stylize at once (`use_lanes`): up to
        `MAX_LANES` on a CPU with that many threads, else 1."""
        return min(MAX_LANES, self._threads) if self._device.type == "cpu" else 1

    def use_lanes(self, lanes: int) -> None:
        """Let `lanes` (1 to `self.lanes`) stylize calls run at once, each live frame on its
        share of the threads; the caller keeps that many frames in flight. Calls already
        running finish as they began."""
        lanes = max(1, min(lanes, self.lanes))
        with self._lock:
            self._lanes = lanes
            self._gate = threading.Semaphore(lanes)
            self._lane_tuner = self._tuner if lanes == 1 else self._tuner_per_lane(lanes)
        log.info("ONNX Runtime: %d frame(s) at once, %d thread(s) each", lanes, self._lane_tuner.settled)

    def _tuner_per_lane(self, lanes: int) -> ThreadTuner[int]:
        return ThreadTuner(thread_choices(max(1, self._threads // lanes)), label="ONNX Runtime threads per lane")

    def set_style(self, name: str) -> None:
        self._style = self._check_style(name)

    def _check_style(self, name: str) -> str:
        if name not in self._paths:
            raise KeyError(f"unknown style {name!r}; available: {', '.join(self._paths)}")
        return name

    def output_size(self, width: int, height: int, size: int | None | _Default = DEFAULT) -> tuple[int, int]:
        """The (w, h) `stylize` returns for a width x height frame."""
        return processing_size(width, height, self._requested(size))

    # ----------------------------------------------------------------------------- running
    def stylize(self, frame_bgr: np.ndarray, style: str | None = None,
                size: int | None | _Default = DEFAULT) -> np.ndarray:
        """BGR uint8 (H, W, 3) -> stylized RGB uint8 at `output_size` (a new array each call)."""
        if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3 or frame_bgr.dtype != np.uint8:
            raise ValueError(f"expected a BGR uint8 frame (H, W, 3), got {frame_bgr.dtype} {frame_bgr.shape}")
        name = self._check_style(style) if style is not None else self._style
        self._make_late(self._paths[name])
        h, w = frame_bgr.shape[:2]
        tw, th = self.output_size(w, h, size)
        with self._gate:
            t0 = time.perf_counter()
            frame = resize_to(frame_bgr, (tw, th))
            padded, (ph, pw) = pad_frame(np.ascontiguousarray(frame))
            live = isinstance(size, _Default)  # the stream the thread count is tuned for
            try:
                out = self._run(name, padded, live)
            except Exception as exc:
                if self._device.type != "cuda":
                    raise
                log.warning("ONNX Runtime on CUDA failed: %r", exc)
                self._load(OrtDevice("cpu"))
                self._notice(f"GPU error ({_first_line(exc)}); switched to CPU, which is much slower")
                out = self._run(name, padded, live)
            result = np.ascontiguousarray(out[0, :ph, :pw])
            elapsed = time.perf_counter() - t0
        if live:  # thumbnails and snapshots are other work, not frames of the stream
            self._timer.tick(elapsed)
        return result

    def exporting(self, name: str) -> bool:
        """Whether style `name`'s graph is still to be exported (`LateExport`): its first frame
        waits for the export, seconds, while the view goes on with the style before."""
        return self._paths.get(name) in self._late

    def _make_late(self, path: Path) -> None:
        """Export the graph at `path` if it was left for its first frame (`LateExport`); a failed
        export raises its error again on each later frame instead of being tried again."""
        if path not in self._late and path not in self._late_failed:
            return
        with self._making:
            if path in self._late_failed:
                raise self._late_failed[path].with_traceback(None)  # not one more traceback each frame
            late = self._late.get(path)
            if late is None:  # made while this call waited
                return
            log.info("exporting %s on its style's first frame", path.name)
            try:
                late.make()
            except Exception as exc:
                self._late_failed[path] = exc
                raise
            finally:
                del self._late[path]

    def _run(self, name: str, padded: np.ndarray, live: bool) -> np.ndarray:
        """`live`: a frame of the stream at the engine's own size, timed for the thread tuner
        (with lanes, the one for a lane's share); other frames run on the settled thread count."""
        with self._lock:
            tuner = self._lane_tuner
            session = self._session(self._paths[name], tuner.current if live else self._tuner.settled)
            feeds = {session.get_inputs()[0].name: padded[None], **self._codes.get(name, {})}
        t0 = time.perf_counter()
        out = session.run(None, feeds)[0]
        if live:
            with self._lock:
                tuner.record(time.perf_counter() - t0)
        return out

    def _session(self, path: Path, threads: int):
        if threads == self._threads:
            if path not in self._sessions:  # a style's first frame
                self._sessions = self._open([path], self._device, self._sessions)
            return self._sessions[path]
        key = (path, threads)
        if key not in self._fewer_threads:
            self._fewer_threads[key] = open_session(path, self._device, threads)
        return self._fewer_threads[key]

    def warmup(self, width: int = 640, height: int = 480) -> None:
        """Run one black frame (ORT's first-run allocations) without counting it."""
        self.stylize(np.zeros((height, width, 3), np.uint8))
        self._timer.reset()

    def _notice(self, message: str) -> None:
        log.warning("%s", message)
        self.notices.append(message)
        if self.on_notice is not None:
            try:
                self.on_notice(message)
            except Exception:
                log.exception("on_notice callback failed")


def _instant_feeds(style: InstantStyle) -> dict[str, np.ndarray]:
    """The shared MicroAST graph's inputs that make it run `style`: its code and its amount."""
    return {CODE_INPUT: style.code, DETAIL_INPUT: np.array([style.detail], np.float32)}


def _graph_path(model: Path | str | OnnxStyle | InstantStyle) -> Path:
    """The ONNX file that runs `model`: an instant style's is the shared MicroAST frame graph."""
    if isinstance(model, InstantStyle):
        from nstcam.engines.instant_onnx import graph_files

        return graph_files()[1]
    return Path(model.path if isinstance(model, OnnxStyle) else model)


def engine_from_dirs(dirs: Sequence[Path | str], device: str = "auto", size: int | None = 480,
                     quantization: str = "fp32", threads: int | None = None) -> tuple[OnnxStyleEngine, dict[str, OnnxStyle]]:
    """An engine over every exported style in `dirs`, and the styles (for titles); ValueError if none."""
    dev = resolve_device(device)
    styles, errors = discover(dirs, quantization, dev.type)
    if not styles:
        broken = f" ({len(errors)} failed: {errors[0][1]})" if errors else ""
        raise ValueError(f"no exported styles (*.onnx) in {', '.join(map(str, dirs))}{broken}")
    return OnnxStyleEngine(styles, device=dev.type, size=size, threads=threads), styles


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
