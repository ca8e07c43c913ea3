"""Any picture becomes a live style: File -> Style from picture…, a picture dropped on the window,
or one pasted (Ctrl+V).

The picture is read and encoded (nstcam.jobs.instant_style) on a worker thread, its style file
written to the user styles folder, and the style added to the engine and the registry; the window
then puts it in the gallery and chooses it. A pasted image is first saved as a PNG in the user
cache, so that it, too, has a file a dedicated style can be trained from later. The gallery's
context menu on an instant style offers Remove and Train a dedicated style…
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QMimeData, QObject, QPoint, Qt, Signal
from PySide6.QtGui import QAction, QGuiApplication, QImage, QKeySequence
from PySide6.QtWidgets import QFileDialog, QListWidget, QMenu, QWidget

from nstcam.engines.instant import VARIANT
from nstcam.engines.instant_onnx import InstantUnavailable
from nstcam.host import userdirs
from nstcam.jobs.instant_style import PICTURE_TYPES, PictureError, remove_instant_style, style_from_picture
from nstcam.ui.gallery import NAME_ROLE
from nstcam.ui.workers import TaskWorker

if TYPE_CHECKING:
    from nstcam.ui.context import WindowContext

log = logging.getLogger(__name__)

PICTURE_FILTER = f"Pictures ({' '.join(PICTURE_TYPES)});;All files (*)"


def pasted_dir() -> Path:
    """Where pasted images are kept (the user cache): the source a dedicated style trains from."""
    return userdirs.user_cache_dir() / "pasted"


class InstantStyles(QObject):
    """Owns File -> Style from picture… (`from_picture_action`) and Paste (`paste_action`,
    Ctrl+V); `drop` takes what was dropped on the window. `styleAdded(name)` once a style is in
    the engine and the registry; `styleRemoved(name)`; `trainRequested(picture)` for the New
    style dialog. `requested_at`: time.monotonic() of the newest request (for the first-frame time)."""

    styleAdded = Signal(str)  # noqa: N815 - Qt naming
    styleRemoved = Signal(str)  # noqa: N815
    trainRequested = Signal(object)  # noqa: N815 - the picture's Path

    def __init__(self, ctx: WindowContext, parent: QWidget) -> None:
        super().__init__(parent)
        self.ctx, self.parent_widget = ctx, parent
        self.requested_at: float | None = None
        self.from_picture_action = QAction("Style from picture…", parent)
        self.from_picture_action.setToolTip("Any picture becomes a live style in about a second (or drop "
                                            "one on the window, or paste one with Ctrl+V)")
        self.from_picture_action.triggered.connect(self.choose_picture)
        self.paste_action = QAction("Paste picture as style", parent)
        self.paste_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Paste))
        self.paste_action.triggered.connect(self.paste)
        parent.addAction(self.paste_action)  # the shortcut works without a menu entry being open

    # ------------------------------------------------------------------ requests
    def choose_picture(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.parent_widget, "Style from picture", "", PICTURE_FILTER)
        if path:
            self.from_file(Path(path))

    @staticmethod
    def accepts(mime: QMimeData) -> bool:
        """Whether `mime` (a drag or the clipboard) holds a picture file or an image."""
        return mime.hasImage() or any(url.isLocalFile() for url in mime.urls())

    def drop(self, mime: QMimeData) -> bool:
        """Make a style from the first local file in `mime`, else from its image; False if neither."""
        files = [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]
        if files:
            self.from_file(files[0])
            return True
        if mime.hasImage():
            self.from_image(QImage(mime.imageData()))
            return True
        return False

    def paste(self) -> None:
        if not self.drop(QGuiApplication.clipboard().mimeData()):
            self.ctx.report("nothing to paste: copy a picture or a picture file first", error=True)

    def from_image(self, image: QImage) -> None:
        """A pasted image: saved as a PNG (the source of a later dedicated style), then made."""
        if image.isNull():
            self.ctx.report("the pasted image is empty", error=True)
            return
        folder = pasted_dir()
        path = folder / time.strftime("pasted-%Y%m%d-%H%M%S.png")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if not image.save(str(path), "PNG"):
                raise OSError("Qt could not write the PNG")
        except OSError as exc:
            self.ctx.report(f"cannot keep the pasted image in {folder} ({exc})", error=True)
            return
        self.from_file(path)

    def from_file(self, picture: Path) -> TaskWorker:
        """Make the picture's style on a worker; the status line says what happens."""
        self.requested_at = time.monotonic()
        ctx, taken = self.ctx, self.ctx.registry.names()
        ctx.report(f"making a style from {picture.name}…")

        runtime = getattr(ctx.engine, "backend", "torch")  # the ONNX Runtime engine encodes on ONNX Runtime too

        def job(_worker: TaskWorker):
            style = style_from_picture(picture, userdirs.user_styles_dir(), taken, runtime=runtime)
            if style.name not in ctx.engine.style_names:
                ctx.engine.add_style(style.name, style)
            return style

        # Expected: a bad picture, a folder that cannot be written, no MicroAST export and no torch
        # to make one, ONNX Runtime refusing the graph (ValueError): each is one line in the status.
        worker = TaskWorker(job, name="instant-style", parent=self,
                            expected=(PictureError, OSError, InstantUnavailable, ValueError))
        worker.finished.connect(self._made)
        worker.failed.connect(lambda exc: None if ctx.closing else ctx.report(_reason(exc, picture), error=True))
        ctx.workers.start(worker)
        return worker

    def _made(self, style) -> None:
        if self.ctx.closing:
            return
        self.ctx.registry.add(style.path, style)
        self.styleAdded.emit(style.name)
        self.ctx.report(f"style {style.name} from {Path(style.meta.get('source', '')).name or 'a picture'}; "
                        f"saved in {style.path.parent}")

    # ------------------------------------------------------------------ the gallery's menu
    def attach(self, gallery: QListWidget) -> None:
        """Offer Remove and Train a dedicated style… on the gallery's instant styles (right click)."""
        gallery.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        gallery.customContextMenuRequested.connect(lambda pos: self._context_menu(gallery, pos))

    def _context_menu(self, gallery: QListWidget, pos: QPoint) -> None:
        item = gallery.itemAt(pos)
        menu = self.menu_for(item.data(NAME_ROLE)) if item is not None else None
        if menu is not None:
            menu.exec(gallery.viewport().mapToGlobal(pos))

    def is_instant(self, name: str) -> bool:
        return any(e.variant == VARIANT for e in self.ctx.registry.variants(name))

    def menu_for(self, name: str) -> QMenu | None:
        """The context menu of style `name`; None for a trained style."""
        if not self.is_instant(name):
            return None
        menu = QMenu(self.parent_widget)
        menu.addAction("Train a dedicated style…", lambda: self.train_dedicated(name))
        remove = menu.addAction("Remove", lambda: self.remove(name))
        remove.setEnabled(self.ctx.engine.style != name)  # the style in use stays until another is chosen
        return menu

    def train_dedicated(self, name: str) -> None:
        picture = Path(self.ctx.registry.choose(name, "cpu").model.meta.get("source") or "")
        if not picture.is_file():
            self.ctx.report(f"the picture of {name} is gone ({picture}); train from a painting with "
                            "File -> New style…", error=True)
            return
        self.trainRequested.emit(picture)

    def remove(self, name: str) -> None:
        """Delete the instant style's file and drop it from the engine and the registry."""
        ctx = self.ctx
        entry = next(e for e in ctx.registry.variants(name) if e.variant == VARIANT)
        if ctx.engine.style == name:
            ctx.report(f"{name} is the style in use: choose another one, then remove it", error=True)
            return
        try:
            remove_instant_style(entry.model)
        except OSError as exc:
            ctx.report(f"cannot delete {entry.path} ({exc})", error=True)
            return
        ctx.engine.remove_style(name)
        ctx.registry.remove(entry.path)
        self.styleRemoved.emit(name)
        ctx.report(f"removed the style {name}")


def _reason(exc: Exception, picture: Path) -> str:
    if isinstance(exc, PictureError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"cannot save the style of {picture.name} in {userdirs.user_styles_dir()} ({exc})"
    return f"could not make a style from {picture.name} ({exc})"
