"""Where the app keeps user files, following each platform's conventions, without Qt.

    user styles   <app data>/styles     ~/.local/share/nstcam/styles (XDG_DATA_HOME),
                                        ~/Library/Application Support/nstcam/styles, %APPDATA%\\nstcam\\styles
    snapshots     <Pictures>/nstcam     XDG_PICTURES_DIR (~/.config/user-dirs.dirs) or ~/Pictures
    recordings    <Videos>/nstcam       XDG_VIDEOS_DIR, ~/Movies on macOS, or ~/Videos
    cache         <cache>/nstcam        XDG_CACHE_HOME (~/.cache), ~/Library/Caches, %LOCALAPPDATA%;
                                        NSTCAM_CACHE_DIR replaces the whole path
    settings      Qt's choice (nstcam.ui.settings); NSTCAM_CONFIG_DIR replaces the folder

The same folders Qt's QStandardPaths names, computed here so that `nstcam styles`, `render` and
the CLI's checks run without PySide6 (the torch-free and headless runtimes).
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

APP_NAME = "nstcam"


def _xdg_user_dir(key: str, fallback: str) -> Path:
    """A folder from ~/.config/user-dirs.dirs (XDG_PICTURES_DIR="$HOME/Pictures"), else ~/fallback."""
    home = Path.home()
    config = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / "user-dirs.dirs"
    try:
        text = config.read_text(encoding="utf-8")
    except OSError:
        text = ""
    match = re.search(rf'^{key}="([^"]*)"', text, re.MULTILINE)
    if match:
        value = match.group(1).replace("$HOME", str(home))
        if value and Path(value) != home:
            return Path(value)
    return home / fallback


def _platform_dir(windows: tuple[str, str], macos: str, xdg: tuple[str, str]) -> Path:
    """The platform's folder for a kind of file: `windows` and `xdg` name an environment variable
    and the path under home used when it is unset, `macos` the path under home. The home folder is
    looked up only when needed: a service account may have none (Path.home() then raises)."""
    if sys.platform == "darwin":
        return Path.home() / macos
    variable, under_home = windows if sys.platform == "win32" else xdg
    value = os.environ.get(variable)
    return Path(value) if value else Path.home() / under_home


def app_data_dir() -> Path:
    return _platform_dir(("APPDATA", "AppData/Roaming"), "Library/Application Support",
                         ("XDG_DATA_HOME", ".local/share")) / APP_NAME


def user_cache_dir() -> Path:
    """Files the app can rebuild (ONNX exports, measured choices); not created here.
    NSTCAM_CACHE_DIR, if set, is used as is (tests, portable installs)."""
    override = os.environ.get("NSTCAM_CACHE_DIR")
    if override:
        return Path(override)
    return _platform_dir(("LOCALAPPDATA", "AppData/Local"), "Library/Caches", ("XDG_CACHE_HOME", ".cache")) / APP_NAME


def settings_dir_override() -> Path | None:
    """NSTCAM_CONFIG_DIR, if set: the folder of the window's remembered settings instead of the
    platform's (a measurement that must start from the defaults, a portable install)."""
    override = os.environ.get("NSTCAM_CONFIG_DIR")
    return Path(override) if override else None


def user_styles_dir() -> Path:
    """Styles the user added or trained (not created here; the registry skips a missing folder)."""
    return app_data_dir() / "styles"


def pictures_dir() -> Path:
    """Default folder for snapshots."""
    if sys.platform.startswith("linux"):
        return _xdg_user_dir("XDG_PICTURES_DIR", "Pictures") / APP_NAME
    return Path.home() / "Pictures" / APP_NAME


def videos_dir() -> Path:
    """Default folder for recordings started from the window."""
    if sys.platform.startswith("linux"):
        return _xdg_user_dir("XDG_VIDEOS_DIR", "Videos") / APP_NAME
    return Path.home() / ("Movies" if sys.platform == "darwin" else "Videos") / APP_NAME
