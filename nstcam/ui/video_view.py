"""The video area: the stylized stream, aspect kept, centred on a dark background.

Frames arrive as numpy RGB arrays; `set_frame` wraps one in a QImage (no copy; the array is kept
alive alongside) and schedules a repaint. `paintEvent` draws it scaled with KeepAspectRatio into
the largest rectangle that fits. In comparison mode the raw camera frame is drawn left and the
stylized one right. A message overlay (with an optional button, e.g. "Use the demo scene") sits
on top when there is nothing to show.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPaintEvent
from PySide6.QtWidgets import QFrame, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

BACKGROUND = QColor(18, 18, 20)


def rgb_to_qimage(rgb: np.ndarray) -> QImage:
    """A QImage viewing `rgb` (H, W, 3) uint8; keep `rgb` alive as long as the image is used."""
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888)


def fit_rect(image_size: QSize, area: QRect) -> QRect:
    """The largest rectangle of `image_size`'s aspect ratio inside `area`, centred."""
    scaled = image_size.scaled(area.size(), Qt.AspectRatioMode.KeepAspectRatio)
    x = area.x() + (area.width() - scaled.width()) // 2
    y = area.y() + (area.height() - scaled.height()) // 2
    return QRect(x, y, scaled.width(), scaled.height())


class MessageOverlay(QFrame):
    """A centred panel with a message and an optional action button."""

    action = Signal()

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("overlay")
        self.setStyleSheet(
            "#overlay { background: rgba(30, 30, 34, 230); border: 1px solid #555; border-radius: 8px; }"
            "QLabel { color: #eee; }"
        )
        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 14, 18, 14)
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.button = QPushButton(self)
        self.button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.button.clicked.connect(self.action)
        layout.addWidget(self.label)
        layout.addWidget(self.button, 0, Qt.AlignmentFlag.AlignCenter)
        self.hide()

    def show_message(self, text: str, button: str | None = None) -> None:
        self.label.setText(text)
        self.button.setVisible(bool(button))
        if button:
            self.button.setText(button)
        self.show()
        self.raise_()
        self.reposition()

    def reposition(self) -> None:
        parent = self.parentWidget()
        if parent is None:
            return
        width = min(520, max(200, parent.width() - 40))
        self.setFixedWidth(width)
        self.adjustSize()
        self.move((parent.width() - self.width()) // 2, (parent.height() - self.height()) // 2)


class VideoView(QWidget):
    """Paints the newest frame; counts what it was given (`frames_shown`) for stats and tests."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 180)
        self._frame: np.ndarray | None = None
        self._image: QImage | None = None
        self._raw: np.ndarray | None = None
        self._raw_image: QImage | None = None
        self.compare = False
        self.frames_shown = 0
        self.placeholder = "Starting…"
        self.overlay = MessageOverlay(self)

    # ------------------------------------------------------------------ data
    @property
    def frame(self) -> np.ndarray | None:
        """The stylized RGB frame currently shown (None before the first)."""
        return self._frame

    def set_frame(self, rgb: np.ndarray, raw_bgr: np.ndarray | None = None) -> None:
        self._frame = np.ascontiguousarray(rgb)
        self._image = rgb_to_qimage(self._frame)
        if raw_bgr is not None and self.compare:
            self._raw = np.ascontiguousarray(raw_bgr[..., ::-1])
            self._raw_image = rgb_to_qimage(self._raw)
        self.frames_shown += 1
        self.update()

    def set_compare(self, on: bool) -> None:
        self.compare = on
        if not on:
            self._raw = self._raw_image = None
        self.update()

    def clear(self, placeholder: str = "") -> None:
        self._frame = self._image = self._raw = self._raw_image = None
        self.placeholder = placeholder
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(960, 540)

    # ------------------------------------------------------------------ painting
    def resizeEvent(self, event) -> None:  # noqa: N802, ANN001
        super().resizeEvent(event)
        if self.overlay.isVisible():
            self.overlay.reposition()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), BACKGROUND)
        if self._image is None:
            if self.placeholder and not self.overlay.isVisible():
                p.setPen(QColor(150, 150, 150))
                f = QFont(p.font())
                f.setPointSizeF(f.pointSizeF() * 1.3)
                p.setFont(f)
                p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.placeholder)
            p.end()
            return
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        area = self.rect()
        if self.compare and self._raw_image is not None:
            half = area.width() // 2
            left = QRect(area.x(), area.y(), half - 2, area.height())
            right = QRect(area.x() + half + 2, area.y(), area.width() - half - 2, area.height())
            p.drawImage(fit_rect(self._raw_image.size(), left), self._raw_image)
            p.drawImage(fit_rect(self._image.size(), right), self._image)
            p.setPen(QColor(230, 230, 230))
            p.drawText(left.adjusted(8, 6, 0, 0), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, "camera")
            p.drawText(right.adjusted(8, 6, 0, 0), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, "stylized")
        else:
            p.drawImage(fit_rect(self._image.size(), area), self._image)
        p.end()
