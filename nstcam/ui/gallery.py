"""The style gallery: a horizontal strip of styles, each with a thumbnail its own network rendered.

Click a style to choose it (keys 1-9 and Left/Right are handled by the main window, which calls
`select`). The strip never takes keyboard focus, so those keys always reach the window.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListView, QListWidget, QListWidgetItem, QWidget

from nstcam.ui.video_view import rgb_to_qimage

THUMB = QSize(112, 84)
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
        self.setWordWrap(True)
        self.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setFixedHeight(THUMB.height() + 78)
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
            item = QListWidgetItem(QIcon(placeholder), label)
            item.setData(NAME_ROLE, name)
            item.setToolTip(tip)
            item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
            item.setSizeHint(QSize(THUMB.width() + 64, THUMB.height() + 58))  # two lines of title
            self.addItem(item)

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
