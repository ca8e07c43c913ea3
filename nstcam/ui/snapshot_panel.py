"""The snapshot dock's panel: progress and Cancel while refining, then the image and where it went.

A refined snapshot is shown against the stylized frame it started from: the slider wipes between
the two (left of the split the refined image, right of it the stylized one), and a line gives the
style loss before and after and the mean change.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QPainter, QPixmap
from PySide6.QtWidgets import (QDockWidget, QHBoxLayout, QLabel, QProgressBar, QPushButton, QSlider,
                               QVBoxLayout, QWidget)


class SnapshotPanel(QWidget):
    """Progress, Cancel, then the result image (against the stylized frame) and where it was saved."""

    cancelRequested = Signal()  # noqa: N815

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.title = QLabel("Snapshot")
        self.title.setStyleSheet("font-weight: bold;")
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.cancel = QPushButton("Cancel")
        self.cancel.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.cancel.setEnabled(False)  # until a snapshot is being refined
        self.cancel.clicked.connect(self.cancelRequested)
        row = QHBoxLayout()
        row.addWidget(self.progress, 1)
        row.addWidget(self.cancel)
        self.image = QLabel()
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setMinimumSize(240, 135)
        self.image.setStyleSheet("background: #121214;")
        self.compare = QSlider(Qt.Orientation.Horizontal)
        self.compare.setRange(0, 100)
        self.compare.setValue(100)
        self.compare.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.compare.setToolTip("Drag to compare: refined on the left of the split, the live stylized frame on the right")
        self.compare.valueChanged.connect(self._rescale)
        self.compare_row = QWidget()
        compare = QHBoxLayout(self.compare_row)
        compare.setContentsMargins(0, 0, 0, 0)
        compare.addWidget(QLabel("live"))
        compare.addWidget(self.compare, 1)
        compare.addWidget(QLabel("refined"))
        self.compare_row.hide()
        self.stats = QLabel()
        self.stats.setWordWrap(True)
        self.stats.hide()
        self.where = QLabel()
        self.where.setWordWrap(True)
        self.where.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.open_folder = QPushButton("Open folder")
        self.open_folder.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.open_folder.setEnabled(False)
        layout.addWidget(self.title)
        layout.addLayout(row)
        layout.addWidget(self.image, 1)
        layout.addWidget(self.compare_row)
        layout.addWidget(self.stats)
        layout.addWidget(self.where)
        layout.addWidget(self.open_folder)
        self._pixmap: QPixmap | None = None
        self._before: QPixmap | None = None

    def set_image(self, pixmap: QPixmap | None, before: QPixmap | None = None) -> None:
        """Show `pixmap`; with `before` (same size), the slider compares the two."""
        usable = before is not None and not before.isNull() and pixmap is not None and before.size() == pixmap.size()
        self._pixmap, self._before = pixmap, before if usable else None
        self.compare_row.setVisible(usable)
        self._rescale()

    def set_stats(self, text: str) -> None:
        """The line under the image (style loss, mean change); empty hides it."""
        self.stats.setText(text)
        self.stats.setVisible(bool(text))

    def shown_image(self) -> QPixmap | None:
        """What the image area shows at the slider's position, at the label's size."""
        if self._pixmap is None or self._pixmap.isNull():
            return None
        size, aspect, smooth = self.image.size(), Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
        after = self._pixmap.scaled(size, aspect, smooth)
        if self._before is None:
            return after
        shown = self._before.scaled(size, aspect, smooth)
        split = round(shown.width() * self.compare.value() / 100)
        if split > 0:  # (a source width of 0 would draw all of it)
            painter = QPainter(shown)
            painter.drawPixmap(0, 0, after, 0, 0, split, after.height())
            painter.end()
        return shown

    def resizeEvent(self, event) -> None:  # noqa: N802, ANN001
        super().resizeEvent(event)
        self._rescale()

    def _rescale(self) -> None:
        shown = self.shown_image()
        if shown is None:
            self.image.clear()
        else:
            self.image.setPixmap(shown)


def make_snapshot_dock(folder: Callable[[], Path]) -> tuple[SnapshotPanel, QDockWidget]:
    """The panel in a closable dock (the window places it, hidden until the first snapshot);
    Open folder opens `folder()`."""
    panel = SnapshotPanel()
    panel.open_folder.clicked.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder()))))
    dock = QDockWidget("Snapshot")
    dock.setObjectName("snapshot")  # saveState/restoreState know it by this
    dock.setWidget(panel)
    dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetClosable)
    dock.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    return panel, dock
