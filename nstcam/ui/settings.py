"""Remembered settings: what the window last used, in the user's QSettings (an INI file).

    <config>/nstcam/nstcam.ini   style, strength, colours, brush size, cross-fade, recording size,
                                 mirror, stabilizer, in-between frames, device, precision, output folders,
                                 window geometry and dock state

`fill_from_settings` runs before the engine is built (device, precision and brush size decide
it): every window flag left at None ("not given") takes the remembered value, so a flag on the
command line always wins. A remembered value that no longer fits (CUDA gone, a style deleted)
is skipped, never an error. Only QtCore is used here: nothing is shown before validation.
"""
from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QByteArray, QSettings

from nstcam.host.userdirs import settings_dir_override

if TYPE_CHECKING:
    from nstcam.ui.main_window import MainWindow

log = logging.getLogger(__name__)

# argparse attribute -> type; each is a window flag whose default is None ("not given").
FLAG_KEYS: dict[str, type] = {
    "device": str, "precision": str, "size": int, "mirror": bool, "stabilize": bool, "strength": float,
    "preserve_colors": str, "crossfade": bool, "record_size": str, "pictures_dir": str, "videos_dir": str,
    "inbetween": bool,
}


def open_settings() -> QSettings:
    """The user's settings file, or nstcam.ini in NSTCAM_CONFIG_DIR where that is set (tests
    also redirect it with QSettings.setPath to a temporary folder)."""
    folder = settings_dir_override()
    if folder is not None:
        return QSettings(str(folder / "nstcam.ini"), QSettings.Format.IniFormat)
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, "nstcam", "nstcam")


class SavedSettings:
    """Typed access to a QSettings; values that do not parse as their type read as None."""

    def __init__(self, store: QSettings | None = None) -> None:
        self.store = store if store is not None else open_settings()

    @property
    def path(self) -> str:
        return self.store.fileName()

    def get(self, key: str, kind: type) -> Any:
        if not self.store.contains(key):
            return None
        raw = self.store.value(key)
        try:
            if kind is bool:
                text = str(raw).strip().lower()
                if text not in ("true", "false", "1", "0"):
                    return None
                return text in ("true", "1")
            if kind is bytes:
                return bytes(raw.data()) if isinstance(raw, QByteArray) else None
            value = kind(raw)
        except (TypeError, ValueError):
            log.info("setting %s=%r is not a %s; ignored", key, raw, kind.__name__)
            return None
        return value if value != "" else None

    def put(self, key: str, value: Any) -> None:
        if value is None:
            self.store.remove(key)
        else:
            self.store.setValue(key, QByteArray(value) if isinstance(value, bytes) else value)

    def put_all(self, values: dict[str, Any]) -> bool:
        """Write and sync; False when the file could not be written (a read-only config folder)."""
        for key, value in values.items():
            self.put(key, value)
        self.store.sync()
        return self.store.status() == QSettings.Status.NoError

    def clear(self) -> None:
        self.store.clear()
        self.store.sync()


def _fits(key: str, value: Any, args: argparse.Namespace) -> bool:
    """Whether a remembered value can still be used here (the flag's own checks, quietly)."""
    from nstcam.live.controls import COLOR_MODES, RECORD_SIZES
    from nstcam.engines.api import PRECISIONS
    from nstcam.launch import MAX_SIZE, MIN_SIZE, CliError, resolve_backend, resolve_device

    if key in ("device", "precision"):
        try:
            backend = resolve_backend(getattr(args, "backend", None))
            if key == "device":
                resolve_device(value, backend)
        except CliError:
            return False
        if key == "device":
            return True
        if backend != "torch":  # ONNX Runtime runs fp32 only: a torch run's bf16 does not apply
            return value in ("auto", "fp32")
        device = str(args.device or "auto")
        cuda = device.startswith("cuda") or (device == "auto" and _cuda_available())
        return value in PRECISIONS and (value, cuda) not in (("bf16", True), ("fp16", False))
    checks = {"size": lambda v: MIN_SIZE <= v <= MAX_SIZE, "strength": lambda v: 0.0 <= v <= 1.0,
              "preserve_colors": lambda v: v in COLOR_MODES, "record_size": lambda v: v in RECORD_SIZES}
    return checks.get(key, lambda v: True)(value)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def fill_from_settings(args: argparse.Namespace, settings: SavedSettings | None = None) -> SavedSettings:
    """Give every window flag that was not given (None) its remembered value, if it still fits.
    Returns the settings used."""
    settings = settings or SavedSettings()
    for key, kind in FLAG_KEYS.items():
        if getattr(args, key, None) is not None:
            continue
        value = settings.get(key, kind)
        if value is not None and _fits(key, value, args):
            setattr(args, key, value)
        elif value is not None:
            log.info("remembered %s=%r does not fit this machine; ignored", key, value)
    return settings


# ---------------------------------------------------------------------------------- the window
def window_state(window: MainWindow) -> dict[str, Any]:
    """Everything the window remembers, by settings key (None removes a key)."""
    opts, look = window.options, window.controls.look
    return {
        "style": window.engine.style, "strength": look.strength, "preserve_colors": look.colors,
        "size": window.engine.size, "crossfade": window.controls.fade, "record_size": opts.record_size,
        "mirror": window.mirror_action.isChecked(), "stabilize": window.stabilize_action.isChecked(),
        "inbetween": window.inbetween_action.isChecked(),
        "pictures_dir": str(opts.pictures_dir) if opts.pictures_dir else None,
        "videos_dir": str(opts.videos_dir) if opts.videos_dir else None,
        "geometry": bytes(window.saveGeometry().data()), "window_state": bytes(window.saveState().data()),
    }


def restore_layout(window: MainWindow, settings: SavedSettings) -> None:
    """Window geometry and dock/toolbar state (the other settings arrive as options). The snapshot
    dock keeps its place but stays hidden: the snapshot it showed was the last session's, and it
    opens with the next one."""
    for key, restore in (("geometry", window.restoreGeometry), ("window_state", window.restoreState)):
        saved = settings.get(key, bytes)
        if saved is not None:
            restore(QByteArray(saved))
    window.snapshots.dock.hide()


def reset_window(window: MainWindow) -> None:
    """File -> Reset settings: forget everything remembered and return the controls and output
    folders to their defaults (the device and precision defaults apply at the next start)."""
    from nstcam.launch import DEFAULT_SIZE_CPU, DEFAULT_SIZE_CUDA

    if window.settings is not None:
        window.settings.clear()
    cuda = window.options.device_type == "cuda"
    window.options.pictures_dir = window.options.videos_dir = None
    window.recording.set_size("camera" if cuda else "processing")
    window.look.set_strength(1.0)
    window.look.set_colors("off")
    window.look.set_fade(True)
    window.look.set_brush(DEFAULT_SIZE_CUDA if cuda else DEFAULT_SIZE_CPU)
    for action, on in ((window.mirror_action, False), (window.stabilize_action, window.stabilizer is not None),
                       (window.inbetween_action, True)):
        if action.isChecked() != on:
            action.toggle()
    window.status.show_status("settings reset to the defaults (device and precision: at the next start)")
