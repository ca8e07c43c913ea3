"""The window's menus: New style, Style from picture, output folders, recording size and Reset settings; Help -> Shortcuts, About."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QFileDialog, QMenuBar, QWidget

from nstcam.ui.dialogs import about_html, shortcuts_html, show_text
from nstcam.ui.new_style import NewStyleDialog

if TYPE_CHECKING:
    from nstcam.ui.context import WindowContext


class Menus(QObject):
    """Fills `bar` (File, Help) and owns their actions; `record_size_actions` (the recording
    control's) go in the File menu. `resetRequested`: File -> Reset settings; `styleAdded`: the
    New style dialog trained and added a style. Dialogs open over `parent`."""

    resetRequested = Signal()  # noqa: N815 - Qt naming
    styleAdded = Signal(str)  # noqa: N815

    def __init__(self, ctx: WindowContext, bar: QMenuBar, parent: QWidget,
                 record_size_actions: Sequence[QAction], style_actions: Sequence[QAction] = ()) -> None:
        super().__init__(parent)
        self.ctx, self.parent_widget = ctx, parent
        self.new_style_dialog: NewStyleDialog | None = None  # made on first use
        file_menu = bar.addMenu("&File")
        self.new_style_action = file_menu.addAction("New style…", lambda: self.open_new_style())
        self.new_style_action.setToolTip("Train a style from a painting; the live view keeps running")
        for act in style_actions:  # instant styles: Style from picture…
            file_menu.addAction(act)
        file_menu.addSeparator()
        file_menu.addAction("Snapshot folder…", lambda: self.choose_folder("pictures_dir", "Save snapshots in"))
        file_menu.addAction("Recording folder…", lambda: self.choose_folder("videos_dir", "Save recordings in"))
        file_menu.addSeparator()
        for act in record_size_actions:
            file_menu.addAction(act)
        file_menu.addSeparator()
        self.reset_settings_action = file_menu.addAction("Reset settings", self.resetRequested.emit)
        self.reset_settings_action.setToolTip("Forget the remembered settings and go back to the defaults")
        file_menu.addSeparator()
        self.quit_action = file_menu.addAction("Quit (Esc)", parent.close)
        self.quit_action.setShortcut(QKeySequence("Ctrl+Q"))  # as desktop apps do (Cmd+Q on macOS)

        help_menu = bar.addMenu("&Help")
        self.shortcuts_action = help_menu.addAction("Keyboard shortcuts", self.show_shortcuts)
        self.shortcuts_action.setShortcut(QKeySequence("F1"))
        self.about_action = help_menu.addAction("About nstcam", self.show_about)

    def open_new_style(self, trainer_args: Sequence[str] = (), painting: Path | None = None) -> NewStyleDialog:
        """Show the New style dialog (made on first use; a running training keeps its state),
        with `painting` filled in unless a training runs."""
        if self.new_style_dialog is None:
            self.new_style_dialog = NewStyleDialog(self.ctx, self.parent_widget, trainer_args)
            self.new_style_dialog.styleAdded.connect(self.styleAdded)
        dialog = self.new_style_dialog
        if painting is not None and not dialog.running:
            dialog.painting_edit.setText(str(painting))
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()
        return dialog

    def choose_folder(self, which: str, title: str) -> None:
        ctx = self.ctx
        current = ctx.pictures_dir() if which == "pictures_dir" else ctx.videos_dir()
        folder = QFileDialog.getExistingDirectory(self.parent_widget, title, str(current))
        if folder:
            setattr(ctx.options, which, Path(folder))
            ctx.changed()
            ctx.report(f"{'snapshots' if which == 'pictures_dir' else 'recordings'} go to {folder}")

    def show_shortcuts(self) -> QDialog:
        return show_text(self.parent_widget, "Keyboard shortcuts", shortcuts_html(), 420, 440)

    def show_about(self) -> QDialog:
        return show_text(self.parent_widget, "About nstcam", about_html(self.ctx.registry.entries), 560, 560)
