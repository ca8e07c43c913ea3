"""The window's menus: New style, output folders, recording size and Reset settings; Help -> Shortcuts, About."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QFileDialog

from nstcam.live.controls import RECORD_SIZES
from nstcam.ui.dialogs import about_html, shortcuts_html, show_text
from nstcam.ui.new_style import open_new_style
from nstcam.ui.settings import reset_window

if TYPE_CHECKING:
    from nstcam.ui.main_window import MainWindow

RECORD_SIZE_TEXT = {"camera": "Record at the camera's resolution (upscaled)",
                    "processing": "Record at the processing size (less CPU)"}


def build_menus(window: MainWindow) -> None:
    """File and Help menus; `new_style_action`, `record_size_actions`, `reset_settings_action`,
    `shortcuts_action` and `about_action` become attributes of the window."""
    bar = window.menuBar()
    file_menu = bar.addMenu("&File")
    window.new_style_action = file_menu.addAction("New style…", lambda: open_new_style(window))
    window.new_style_action.setToolTip("Train a style from a painting; the live view keeps running")
    file_menu.addSeparator()
    file_menu.addAction("Snapshot folder…", lambda: choose_folder(window, "pictures_dir", "Save snapshots in"))
    file_menu.addAction("Recording folder…", lambda: choose_folder(window, "videos_dir", "Save recordings in"))
    file_menu.addSeparator()
    group = QActionGroup(window)
    window.record_size_actions = {}
    for size in RECORD_SIZES:
        act = QAction(RECORD_SIZE_TEXT[size], window)
        act.setCheckable(True)
        act.setChecked(window.options.record_size == size)
        act.triggered.connect(lambda _=False, s=size: window.set_record_size(s))
        group.addAction(act)
        file_menu.addAction(act)
        window.record_size_actions[size] = act
    file_menu.addSeparator()
    window.reset_settings_action = file_menu.addAction("Reset settings", lambda: reset_window(window))
    window.reset_settings_action.setToolTip("Forget the remembered settings and go back to the defaults")
    file_menu.addSeparator()
    file_menu.addAction("Quit (Esc)", window.close)

    help_menu = bar.addMenu("&Help")
    window.shortcuts_action = help_menu.addAction("Keyboard shortcuts", lambda: show_shortcuts(window))
    window.shortcuts_action.setShortcut(QKeySequence("F1"))
    window.about_action = help_menu.addAction("About nstcam", lambda: show_about(window))


def choose_folder(window: MainWindow, which: str, title: str) -> None:
    current = window.pictures_dir() if which == "pictures_dir" else window.recording.folder()
    folder = QFileDialog.getExistingDirectory(window, title, str(current))
    if folder:
        setattr(window.options, which, Path(folder))
        window.remember()
        window.status.show_status(f"{'snapshots' if which == 'pictures_dir' else 'recordings'} go to {folder}")


def show_shortcuts(window: MainWindow):
    return show_text(window, "Keyboard shortcuts", shortcuts_html(), 420, 440)


def show_about(window: MainWindow):
    return show_text(window, "About nstcam", about_html(window.registry.entries), 560, 560)
