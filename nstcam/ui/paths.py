"""Where the app keeps user files, via QStandardPaths (QtCore only: safe headless, no QApplication).

    user styles   <AppDataLocation>/styles      e.g. ~/.local/share/nstcam/styles
    snapshots     <PicturesLocation>/nstcam     e.g. ~/Pictures/nstcam
    recordings    <MoviesLocation>/nstcam       e.g. ~/Videos/nstcam

The CLI imports this module for the user styles directory even for `styles` and `render`, so it
must never import QtGui or QtWidgets.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QCoreApplication, QStandardPaths

APP_NAME = "nstcam"


def set_app_identity() -> None:
    """Name the app before any QStandardPaths look-up (it decides the AppDataLocation folder).

    The organisation name is deliberately left empty: Qt inserts it as an extra folder level
    (~/.local/share/<org>/<app>), and "nstcam/nstcam" would help no one.
    """
    if QCoreApplication.applicationName() != APP_NAME:
        QCoreApplication.setApplicationName(APP_NAME)


def _location(kind: QStandardPaths.StandardLocation) -> Path:
    set_app_identity()
    loc = QStandardPaths.writableLocation(kind)
    return Path(loc) if loc else Path.home()


def user_styles_dir() -> Path:
    """Styles the user added (not created here; the registry skips a missing folder)."""
    return _location(QStandardPaths.StandardLocation.AppDataLocation) / "styles"


def pictures_dir() -> Path:
    """Default folder for snapshots."""
    return _location(QStandardPaths.StandardLocation.PicturesLocation) / APP_NAME


def videos_dir() -> Path:
    """Default folder for recordings started from the window."""
    return _location(QStandardPaths.StandardLocation.MoviesLocation) / APP_NAME
