"""Exports made in the background so that the next launch starts without torch.

A launch whose measured fastest engine is torch shows its first frames on ONNX Runtime while the
engine process loads torch (nstcam.autobackend.remembered_launch), which needs a current fp32
export of every style file. The timing on the first launch exports only the style it timed; when
torch won it, the others are exported here once the live view runs (where ONNX Runtime won, its
engine exports each style on its first frame, the gallery's thumbnail at the latest): in a
separate process at the lowest CPU priority (nice 10), so the frames keep the GIL and nearly all
of the cores, and only when an export is missing or stale (checking costs a hash of each style
file, a few ms).
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

STOP_SECONDS = 5.0


def missing_exports(style_files: Sequence[Path]) -> list[Path]:
    """The style files without a current fp32 export."""
    from nstcam.engines.onnx_export import export_state

    missing = []
    for path in style_files:
        try:
            current = export_state(path)[2]
        except OSError:
            continue  # gone or unreadable: nothing to export
        if not current:
            missing.append(path)
    return missing


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(1)


def _export_all(style_files: list[Path]) -> None:
    """The background process: export each file, lowest priority; SIGTERM ends it cleanly (the
    export in progress removes its temporary file, none is left half-written)."""
    signal.signal(signal.SIGTERM, _exit_on_signal)
    for sig in ("SIGINT", "SIGHUP"):  # the terminal's signals are the app's to handle
        if hasattr(signal, sig):
            signal.signal(getattr(signal, sig), signal.SIG_IGN)
    os.nice(10)
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
        if self.process is None or not self.process.is_alive():
            return
        self.process.terminate()  # SIGTERM: the child stops between or inside an export, cleanly
        self.process.join(STOP_SECONDS)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(STOP_SECONDS)
