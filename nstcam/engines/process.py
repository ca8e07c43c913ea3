"""The CPU engine in a child process, so its OpenMP team belongs to a process's main thread.

Why: libgomp shortens its spin-waits ("throttles") once a process manages more OpenMP threads than
it has cores, and a torch team started from any thread but the main one always tips that count
(the main thread counts too). The live stylize thread is such a thread, and on 2 cores it ran the
light network at about 0.67x the main thread's rate. A child process runs the same `StyleEngine`
on its main thread and gets the full rate; frames cross in shared memory, so a frame costs two
memcpys and one pipe message each way.

`ProcessEngine` wraps the in-process engine and has its interface. The child is started only once
the first frame has run in-process: its start-up (importing torch, about a core-second) would
otherwise compete with the app's own launch for the same cores and delay the first picture. Until
the child has loaded, and for good after it fails, frames run in-process, so no frame waits for
the child and a crashed child costs speed, never the video.

The wrapped engine need not be torch's: a launch whose measured fastest engine is torch but whose
styles have current ONNX exports starts on ONNX Runtime (`sources` names the style files), so the
app shows its first frames without importing torch (about 1.5 core-seconds), and the child loads
the style files itself and takes over at the measured precision.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import signal
import threading
import time
from multiprocessing.connection import Connection
from collections.abc import Mapping
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path
from typing import Any

import numpy as np

from nstcam.engines.api import DEFAULT, EngineStats, FrameTimer

log = logging.getLogger(__name__)

START_SECONDS = 60.0  # the child must be ready within this, or the engine stays in-process
CLOSE_SECONDS = 5.0
WAIT_SLICE = 0.1  # how often a frame waiting on the child checks whether the engine is closing
# What a terminal sends its whole foreground process group (Ctrl-C, hang-up). The app closes on
# them and stops the child itself; the child and the resource tracker must not die first.
TERMINAL_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGHUP") if hasattr(signal, name))


def _child_model(item: Any) -> Any:
    """A style as the child's engine takes it: a style file (Path) is loaded here."""
    from nstcam.engines.style_files import load_torch_style

    return load_torch_style(item) if isinstance(item, Path) else item


def _child_main(conn: Connection, models: dict, size: int | None, precision: str, threads: int | None) -> None:
    """The child: build the engine, then answer ("run", ...) requests until the pipe closes."""
    for sig in TERMINAL_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    import torch

    from nstcam.engines.torch_engine import StyleEngine
    from nstcam.host.malloc import keep_freed_memory

    keep_freed_memory()
    if threads:
        torch.set_num_threads(threads)
    engine = StyleEngine({name: _child_model(m) for name, m in models.items()}, device="cpu", size=size,
                         precision=precision)
    buffers: dict[str, SharedMemory] = {}
    try:
        conn.send(("ready", engine.precision))
        while True:
            msg = conn.recv()
            if msg[0] == "buffers":
                for shm in buffers.values():
                    shm.close()
                buffers = {"in": SharedMemory(msg[1]), "out": SharedMemory(msg[2])}
            elif msg[0] == "run":
                _, shape, style, size = msg  # the app's processing size, which the user may change
                frame = np.ndarray(shape, np.uint8, buffer=buffers["in"].buf)
                engine.size = size  # the live stream runs at the engine's own size (its thread tuning)
                try:
                    out = engine.stylize(frame, style)
                except Exception as exc:  # reported to the app, which raises it in its own thread
                    conn.send(("error", f"{type(exc).__name__}: {exc}"))
                    continue
                if out.nbytes > buffers["out"].size:
                    conn.send(("error", "output buffer too small"))
                    continue
                np.ndarray(out.shape, np.uint8, buffer=buffers["out"].buf)[...] = out
                conn.send(("ok", out.shape))
            elif msg[0] == "add":  # a style added at run time (nstcam.ui.new_style)
                engine.add_style(msg[1], _child_model(msg[2]))
            elif msg[0] == "stop":
                return
    except (EOFError, ConnectionError):
        return  # the app went away: it closed the pipe, or it was killed
    finally:
        for shm in buffers.values():
            shm.close()


def _start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker (it frees the shared frames if the app dies) now,
    ignoring the terminal's signals, which it inherits: otherwise it starts with the first frame
    buffer and a closed terminal kills it before the app has shut down (the app then logs its
    KeyErrors). Only the main thread may change signal handlers; elsewhere it starts as usual."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGHUP"):
        return
    from multiprocessing import resource_tracker

    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in TERMINAL_SIGNALS}
    try:
        resource_tracker.ensure_running()
    finally:
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)


class ProcessEngine:
    """The wrapped engine's interface; `stylize` at the engine's own size runs in the child process.

    `engine`: a CPU StyleEngine, whose styles and precision the child takes, or an ONNX Runtime
    engine with `sources` (style name -> style file, which the child loads) and the child's
    `precision`. `threads`: the child's torch threads (default: torch's).
    """

    def __init__(self, engine: Any, threads: int | None = None, sources: Mapping[str, Path] | None = None,
                 precision: str | None = None) -> None:
        if engine.device.type != "cpu":
            raise ValueError("the engine process is for CPU engines (CUDA runs asynchronously anyway)")
        self.inner = engine
        self._lock = threading.Lock()
        self._timer = FrameTimer()  # frames that ran in the child
        self._buffers: tuple[SharedMemory, SharedMemory] | None = None
        self._state = "idle"  # -> "starting" (after the first frame) -> "running" | "in-process"
        self._sources: dict[str, Any] = dict(sources) if sources is not None else dict(engine._models)
        self._child_styles = set(self._sources)  # the child gets a style added later with its first frame
        self._precision = precision or engine.precision  # the child's
        self._standing_in = getattr(engine, "backend", "torch") == "onnxruntime"  # ONNX Runtime until the child runs
        self._threads = threads
        self._started = 0.0
        self._closing = threading.Event()  # set by close(): a frame waiting on the child gives up
        self._conn: Connection | None = None
        self._process: mp.process.BaseProcess | None = None
        _start_resource_tracker()

    def _spawn(self) -> None:
        ctx = mp.get_context("spawn")  # never fork a process that has threads and Qt
        self._conn, child_conn = ctx.Pipe()
        self._process = ctx.Process(
            target=_child_main, name="nstcam-engine", daemon=True,
            args=(child_conn, dict(self._sources), self.inner.size, self._precision, self._threads))
        self._started = time.monotonic()
        self._process.start()
        child_conn.close()
        self._state = "starting"

    # ------------------------------------------------------------------ StyleEngine's interface
    def __getattr__(self, name: str) -> Any:  # style, style_names, set_style, device, precision...
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def size(self) -> int | None:
        return self.inner.size

    @size.setter
    def size(self, value: int | None) -> None:
        self.inner.size = value  # the child is told the size with every frame

    @property
    def on_notice(self):
        return self.inner.on_notice

    @on_notice.setter
    def on_notice(self, fn) -> None:
        self.inner.on_notice = fn

    @property
    def precision(self) -> str:
        """The number format frames run in now: the child's once it runs them."""
        return self._precision if self.in_child else self.inner.precision

    def add_style(self, name: str, model: Any) -> None:
        """As the wrapped engine's (a trained StyleModel or an InstantStyle); the child gets it
        with the first frame of the style."""
        self.inner.add_style(name, self._inner_model(model))
        self._sources[name] = model
        self._child_styles.discard(name)

    def _inner_model(self, model: Any) -> Any:
        """`model` as the wrapped engine takes it: an ONNX Runtime engine runs a trained style's
        export (made now, once, which needs torch), an instant style as it is."""
        if not self._standing_in or not hasattr(model, "config"):
            return model
        from nstcam.engines.onnx_export import ensure_onnx

        return ensure_onnx(model.path)

    def remove_style(self, name: str) -> None:
        """As StyleEngine's; the child keeps the network but is sent the style again if a new
        one of the same name is added later."""
        self.inner.remove_style(name)
        self._sources.pop(name, None)
        self._child_styles.discard(name)

    @property
    def stats(self) -> EngineStats:
        inner, child = self.inner.stats, self._timer.stats()
        return EngineStats(fps=max(child.fps, inner.fps), latency_ms=child.latency_ms or inner.latency_ms,
                           frames=child.frames + inner.frames, max_fps=child.max_fps or inner.max_fps)

    @property
    def in_child(self) -> bool:
        """True once frames run in the child process."""
        return self._state == "running"

    def describe(self) -> str:
        if not self.in_child:
            starting = self._standing_in and self._state in ("idle", "starting")
            return self.inner.describe() + (f" · starting torch {self._precision}" if starting else "")
        if self._standing_in:  # the child runs torch: say so, not the stand-in's runtime
            selection = f" · {self.inner.selection}" if self.inner.selection else ""
            return f"cpu {self._precision}{selection} · engine process"
        return self.inner.describe() + " · engine process"

    def stylize(self, frame_bgr: np.ndarray, style: str | None = None, size: Any = DEFAULT) -> np.ndarray:
        if size is not DEFAULT or not self._child_ready():
            out = self.inner.stylize(frame_bgr, style, size)
            with self._lock:
                if self._state == "idle":
                    self._spawn()
            return out
        if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3 or frame_bgr.dtype != np.uint8:
            raise ValueError(f"expected a BGR uint8 frame (H, W, 3), got {frame_bgr.dtype} {frame_bgr.shape}")
        name = style if style is not None else self.inner.style
        self.inner._check_style(name)
        t0 = time.perf_counter()
        with self._lock:
            try:
                if name not in self._child_styles:
                    self._conn.send(("add", name, self._sources[name]))
                    self._child_styles.add(name)
                out = self._round_trip(frame_bgr, name)
            except (EOFError, OSError, BrokenPipeError) as exc:
                if not self._closing.is_set():  # close() stops the child itself
                    self._give_up(f"the engine process ended ({exc or type(exc).__name__}); stylizing in-process")
                return self.inner.stylize(frame_bgr, style, size)
        self._timer.tick(time.perf_counter() - t0)
        return out

    # ------------------------------------------------------------------ the child
    def _child_ready(self) -> bool:
        """Under the frame lock: the chain's thread stylizes too (a cross-fade runs the old style),
        and two threads must not both read the child's "ready"."""
        with self._lock:
            return self._check_child()

    def _check_child(self) -> bool:
        if self._state == "starting":
            if self._conn.poll():
                try:
                    msg = self._conn.recv()
                except (EOFError, OSError):
                    msg = ("failed",)
                if msg[0] == "ready":
                    self._state = "running"
                    log.info("engine process ready after %.1f s", time.monotonic() - self._started)
                else:
                    self._give_up("the engine process could not start; stylizing in-process")
            elif not self._process.is_alive() or time.monotonic() - self._started > START_SECONDS:
                self._give_up("the engine process did not start; stylizing in-process")
        return self._state == "running"

    def _round_trip(self, frame: np.ndarray, style: str) -> np.ndarray:
        h, w = frame.shape[:2]
        out_w, out_h = self.inner.output_size(w, h)
        need_in, need_out = frame.nbytes, out_w * out_h * 3
        if self._buffers is None or self._buffers[0].size < need_in or self._buffers[1].size < need_out:
            self._release_buffers()
            self._buffers = (SharedMemory(create=True, size=need_in), SharedMemory(create=True, size=need_out))
            self._conn.send(("buffers", self._buffers[0].name, self._buffers[1].name))
        np.ndarray(frame.shape, np.uint8, buffer=self._buffers[0].buf)[...] = frame
        self._conn.send(("run", frame.shape, style, self.inner.size))
        while not self._conn.poll(WAIT_SLICE):  # a stopped or hung child must not hold the lock past close()
            if self._closing.is_set():
                raise EOFError("the engine is closing")
        reply = self._conn.recv()
        if reply[0] == "error":
            raise RuntimeError(reply[1])
        return np.ndarray(reply[1], np.uint8, buffer=self._buffers[1].buf).copy()

    def _give_up(self, message: str) -> None:
        log.warning("%s", message)
        self._state = "in-process"
        self._stop_child()
        if self.inner.on_notice is not None:
            self.inner.on_notice(message)

    def _release_buffers(self) -> None:
        if self._buffers is not None:
            for shm in self._buffers:
                shm.close()
                shm.unlink()
            self._buffers = None

    def _stop_child(self) -> bool:
        if self._process is None:
            return True  # never started
        try:
            self._conn.send(("stop",))
        except (OSError, BrokenPipeError):
            pass  # already gone
        self._process.join(CLOSE_SECONDS)
        if self._process.is_alive():  # hung, or stopped (SIGSTOP): SIGKILL ends either
            log.warning("engine process did not stop within %.0f s; killing it", CLOSE_SECONDS)
            self._process.kill()
            self._process.join(CLOSE_SECONDS)
        self._conn.close()
        self._release_buffers()
        return not self._process.is_alive()

    def close(self) -> bool:
        """Stop the child and free the shared memory; the wrapped engine stays usable. Idempotent.

        A frame waiting on the child gives up within `WAIT_SLICE` (and is stylized in-process), so
        a child that never answers (stopped with SIGSTOP, hung) delays the close by at most
        `CLOSE_SECONDS` before it is killed, instead of holding the frame lock forever."""
        self._closing.set()
        with self._lock:
            if self._state == "closed":
                return True
            self._state = "closed"
            return self._stop_child()
