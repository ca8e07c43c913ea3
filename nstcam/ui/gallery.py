"""The style gallery: a horizontal strip of styles, each with a thumbnail its own network rendered.

Each item shows its key, the painting's title and, below, the name `--style` takes. Click a style
to choose it (keys 1-9 and Left/Right are handled by the main window, which calls `select`). The
strip never takes keyboard focus, so those keys always reach the window. When the window narrows
(the snapshot dock opens) the items shrink so that every style stays visible.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListView, QListWidget, QListWidgetItem, QWidget

from nstcam.ui.video_view import rgb_to_qimage
from nstcam.ui.workers import TaskWorker, render_thumbnails

if TYPE_CHECKING:
    from nstcam.ui.context import WindowContext

THUMB = QSize(112, 84)
ITEM_WIDTH = THUMB.width() + 64  # the widest an item gets; titles are elided to it
MIN_ITEM_WIDTH = 84
TEXT_HEIGHT = 40  # two lines: title, style name
THUMB_SOURCE_SIZE = (192, 144)  # the demo scene frame the thumbnails are rendered from
THUMB_SHORT_SIDE = 96
NAME_ROLE = Qt.ItemDataRole.UserRole


class StyleGallery(QListWidget):
    styleChosen = Signal(str)  # noqa: N815 - Qt naming

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(False)
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setIconSize(THUMB)
        self.setSpacing(6)
        self.setUniformItemSizes(True)
        self.setWordWrap(False)
        self.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self._item_width = ITEM_WIDTH
        self.setStyleSheet(
            "QListWidget { background: #202024; border: none; color: #ddd; }"
            "QListWidget::item { border-radius: 6px; padding: 4px; }"
            "QListWidget::item:selected { background: #3d6fb4; color: white; }"
        )
        self._names: list[str] = []
        self._thumbs: dict[str, np.ndarray] = {}
        self.itemClicked.connect(self._clicked)

    def set_styles(self, styles: list[tuple[str, str, str]]) -> None:
        """(name, title, tooltip) per style, in display order."""
        self.clear()
        self._names = [name for name, _, _ in styles]
        placeholder = QPixmap(THUMB)
        placeholder.fill(QColor(60, 60, 66))
        for i, (name, title, tip) in enumerate(styles):
            label = f"{i + 1}  {title}" if i < 9 else title
            item = QListWidgetItem(QIcon(placeholder), f"{label}\n{name}")
            item.setData(NAME_ROLE, name)
            item.setToolTip(tip)
            item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
            self.addItem(item)
        for name in [n for n in self._thumbs if n in self._names]:  # a style added later keeps the others'
            self.set_thumbnail(name, self._thumbs[name])
        self._fit()

    def resizeEvent(self, event) -> None:  # noqa: N802, ANN001
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        """Item (and thumbnail) width so that all styles fit the strip's width, down to MIN_ITEM_WIDTH."""
        n = max(1, self.count())
        room = (self.width() - 2 * self.frameWidth() - self.spacing() * (2 * n + 1)) // n
        width = max(MIN_ITEM_WIDTH, min(ITEM_WIDTH, room))
        icon = QSize(width - 24, round((width - 24) * THUMB.height() / THUMB.width()))
        self._item_width = width
        self.setIconSize(icon)
        for i in range(self.count()):
            self.item(i).setSizeHint(QSize(width, icon.height() + TEXT_HEIGHT))
        self.setFixedHeight(icon.height() + TEXT_HEIGHT + 2 * self.spacing() + 2 * self.frameWidth() + 4)

    @property
    def names(self) -> list[str]:
        return list(self._names)

    def set_thumbnail(self, name: str, rgb: np.ndarray) -> None:
        if name not in self._names:
            return
        self._thumbs[name] = np.ascontiguousarray(rgb)
        image: QImage = rgb_to_qimage(self._thumbs[name]).scaled(
            THUMB, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
        )
        self.item(self._names.index(name)).setIcon(QIcon(QPixmap.fromImage(image)))

    def has_thumbnail(self, name: str) -> bool:
        return name in self._thumbs

    def select(self, name: str) -> None:
        """Highlight `name` without emitting `styleChosen`."""
        if name in self._names:
            row = self._names.index(name)
            self.blockSignals(True)
            self.setCurrentRow(row)
            self.blockSignals(False)
            self.scrollToItem(self.item(row))

    def item_rect(self, name: str):
        """Viewport rectangle of a style's item (for tests that click it)."""
        return self.visualItemRect(self.item(self._names.index(name)))

    def _clicked(self, item: QListWidgetItem) -> None:
        self.styleChosen.emit(str(item.data(NAME_ROLE)))


def start_thumbnails(ctx: WindowContext, gallery: StyleGallery, names: list[str] | None = None) -> TaskWorker:
    """Each style's thumbnail (or those of `names`: a style added later), rendered by its own
    network once the first live frame is shown (so the engine settles its set-up, e.g. the CPU
    memory format, on real frames first)."""
    from nstcam.live.demo import DemoSource

    frame = DemoSource(*THUMB_SOURCE_SIZE).frame_at(75)
    names, engine = list(ctx.engine.style_names if names is None else names), ctx.engine

    def job(worker: TaskWorker) -> int:
        return render_thumbnails(names, lambda name: engine.stylize(frame, style=name, size=THUMB_SHORT_SIDE),
                                 lambda n, rgb: worker.report(0, 0, (n, rgb)), worker.cancelled)

    thumbs = TaskWorker(job, name="thumbnails", parent=gallery)
    thumbs.progress.connect(lambda _a, _b, payload: None if ctx.closing else gallery.set_thumbnail(*payload))
    ctx.workers.start(thumbs)
    return thumbs
