"""Exports made outside the app's process: so that the next launch starts without torch, and
each style's export on its first frame (`export_elsewhere`).

A launch whose measured fastest engine is torch shows its first frames on ONNX Runtime while the
engine process loads torch (nstcam.autobackend.remembered_launch), which needs the launch style's
current fp32 export. The timing on the first launch exports only the style it timed; when torch
won it, the others are exported here once the live view runs (`BackgroundExport`): in a separate
process at the lowest CPU priority (nice 10), so the frames keep the GIL and nearly all of the
cores, and only when an export is missing or stale (checking costs a hash of each style file, a
few ms). Where ONNX Runtime won, its engine exports each style on its first frame, the gallery's
thumbnail at the latest, through `export_elsewhere`: one process at normal priority, started
with the first export and kept for the next.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import threading
from collections.abc import Callable, Sequence
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

STOP_SECONDS = 5.0
IDLE_SECONDS = 60.0  # the late exports' process ends after this long without a request


def missing_exports(style_files: Sequence[Path]) -> list[Path]:
    """The style files without a current fp32 export (not those that cannot be read: they cannot
    be exported either, and the style list already says why)."""
    from nstcam.engines.onnx_export import export_state
    from trainer.styleheader import StyleFileError, read_style_meta

    missing = []
    for path in style_files:
        try:
            read_style_meta(path)
            current = export_state(path)[2]
        except (OSError, StyleFileError):
            continue  # gone, unreadable or broken: nothing to export
        if not current:
            missing.append(path)
    return missing


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(1)


def _exporting_child(nice: int) -> None:
    """An exporting process's set-up: its priority; SIGTERM ends it cleanly (the export in
    progress removes its temporary file, none is left half-written)."""
    signal.signal(signal.SIGTERM, _exit_on_signal)
    for sig in ("SIGINT", "SIGHUP"):  # the terminal's signals are the app's to handle
        if hasattr(signal, sig):
            signal.signal(getattr(signal, sig), signal.SIG_IGN)
    os.nice(nice)


def _export_all(style_files: list[Path]) -> None:
    """The background process: export each file, at the lowest priority."""
    _exporting_child(nice=10)
    from nstcam.engines.onnx_export import ensure_onnx

    for path in style_files:
        try:
            ensure_onnx(path)
        except Exception as exc:  # a broken style file: the registry says so; here it just stays unexported
            log.info("no quick-start export of %s (%s)", path, exc)


class BackgroundExport:
    """The exporting process, if one was needed; `stop` ends it within STOP_SECONDS."""

    def __init__(self, style_files: Sequence[Path]) -> None:
        self.files = missing_exports(style_files)
        self.process: mp.process.BaseProcess | None = None
        if self.files:
            self.process = mp.get_context("spawn").Process(target=_export_all, args=(self.files,),
                                                           name="nstcam-export", daemon=True)
            self.process.start()
            log.info("exporting %d style(s) to ONNX in the background, for a torch-free start next time",
                     len(self.files))

    def stop(self) -> None:
        _end(self.process)


def _end(process: mp.process.BaseProcess | None) -> None:
    """End an exporting process within STOP_SECONDS: SIGTERM stops it between or inside an
    export, cleanly; a child that does not stop is killed."""
    if process is None or not process.is_alive():
        return
    process.terminate()
    process.join(STOP_SECONDS)
    if process.is_alive():
        process.kill()
        process.join(STOP_SECONDS)


def _serve(conn: Connection) -> None:
    """The late exports' process: run each export asked for, answer ("ok", path) or ("error",
    message); ends when the app's end of the pipe closes, or after IDLE_SECONDS without a request
    (torch, onnx and the quantizer hold some 400 MB; the gallery's exports come within seconds)."""
    _exporting_child(nice=0)  # a user who picked the style waits for it
    from nstcam.engines.onnx_export import export_style

    while conn.poll(IDLE_SECONDS):
        try:
            style_path, target, quantization, calibration, digest = conn.recv()
        except EOFError:
            return
        try:
            answer = ("ok", str(export_style(style_path, target, quantization, calibration, sha256=digest)))
        except Exception as exc:  # ExportError, or what a broken file makes the exporter raise
            answer = ("error", str(exc))
        conn.send(answer)


class _Exporter:
    """The late exports' process, started with the first export asked for and kept for the next
    while they come. `stop` ends it and refuses the exports asked for before it: they belong to
    the window that closed."""

    def __init__(self) -> None:
        self._order = threading.Lock()  # one export at a time, in the order asked
        self._state = threading.Lock()  # the process and the generation, which `stop` changes
        self._process: mp.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self.generation = 0  # how many times `stop` was called

    def export(self, generation: int, style_path: Path, target: Path, quantization: str,
               calibration: Sequence[np.ndarray] | None, digest: str) -> Path:
        from nstcam.engines.onnx_export import ExportError

        request = (Path(style_path), Path(target), quantization,
                   None if calibration is None else list(calibration), digest)
        with self._order:
            for attempt in range(2):  # again once if the process had just ended, idle
                process, conn = self._running(generation, Path(style_path).name)
                try:
                    conn.send(request)
                    kind, value = conn.recv()
                    break
                except (EOFError, OSError):  # stopped (the window closed), idle, or it died
                    process.join(STOP_SECONDS)
                    if generation != self.generation or process.exitcode != 0 or attempt:
                        raise ExportError(f"{Path(style_path).name}: the export process ended "
                                          f"(exit code {process.exitcode})") from None
        if kind == "error":
            raise ExportError(value)
        return Path(value)

    def _running(self, generation: int, name: str) -> tuple[mp.process.BaseProcess, Connection]:
        """The process and its pipe, started if need be (under the state lock, so that a `stop`
        meanwhile ends it); ExportError if stopped since `generation`."""
        from nstcam.engines.onnx_export import ExportError

        with self._state:
            if generation != self.generation:
                raise ExportError(f"{name}: not exported; the window that asked for it closed")
            if self._process is None or not self._process.is_alive():
                context = mp.get_context("spawn")
                self._conn, child = context.Pipe()
                self._process = context.Process(target=_serve, args=(child,), name="nstcam-late-export",
                                                daemon=True)
                self._process.start()
                child.close()
            return self._process, self._conn

    def stop(self) -> None:
        """End the process, also inside an export (its temporary file is removed; the caller
        waiting for it gets an ExportError), and refuse the exports asked for before."""
        with self._state:
            self.generation += 1
            process, self._process = self._process, None
        _end(process)


_EXPORTER = _Exporter()


def export_elsewhere(style_path: Path, target: Path, quantization: str,
                     calibration: Sequence[np.ndarray] | None, digest: str) -> Callable[[], Path]:
    """`export_style(style_path, target, ...)`, to be made later in a separate process (started
    on the first export, kept while they come) unless `stop_exports` is called first: in the
    app's process, importing torch, tracing and quantizing held the GIL for seconds, and the live
    view showed 28.0-29.2 frames/s of 30 during a first session making them (29.8-29.9 so). At
    normal priority: at nice 5 the first 20 s made 1-2 of 5 exports, and a style the user picks
    waits for its own. The call returns the path written; ExportError as `export_style` raises
    it, or when stopped."""
    return partial(_EXPORTER.export, _EXPORTER.generation, style_path, target, quantization, calibration, digest)


def stop_exports() -> None:
    """End the late exports' process, if it runs, and refuse the exports planned so far (the
    window closes)."""
    _EXPORTER.stop()
