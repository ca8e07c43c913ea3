"""The video area: the stylized stream, aspect kept, centred on a dark background.

Frames arrive as numpy RGB arrays; `set_frame` keeps one and schedules a repaint. `paintEvent`
draws it into the largest rectangle of its aspect ratio that fits, scaled by OpenCV to the
screen's pixels (`screen_image`). In comparison mode the raw camera frame is drawn left and the
stylized one right. A message overlay (with an optional button, e.g. "Use the demo scene") sits
on top when there is nothing to show.
"""
from __future__ import annotations

import cv2
import numpy as np
from PySide6.QtCore import QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPaintEvent
from PySide6.QtWidgets import QFrame, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from nstcam.resample import resize_to

BACKGROUND = QColor(18, 18, 20)


def rgb_to_qimage(rgb: np.ndarray) -> QImage:
    """A QImage viewing `rgb` (H, W, 3) uint8; keep `rgb` alive as long as the image is used."""
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888)


def screen_image(rgb: np.ndarray, size: QSize, ratio: float) -> tuple[QImage, np.ndarray]:
    """`rgb` (H, W, 3) uint8 resized to `size` (logical pixels) on a screen of device pixel
    `ratio`, as an RGB32 QImage, which the raster paint engine copies as it is; and the array it
    views (keep it alive while painting). Why not QPainter's smooth transform of an RGB888
    image: Qt converts and scales that on its thread pool, 1.4-1.6 ms of CPU a paint against
    0.8 ms this way (320x240 into a 960x540 view, offscreen), at the camera's rate."""
    w, h = max(1, round(size.width() * ratio)), max(1, round(size.height() * ratio))
    # RGB32 is 0xffRRGGBB: B, G, R, 255 in memory (little-endian)
    pixels = cv2.cvtColor(resize_to(rgb, (w, h)), cv2.COLOR_RGB2BGRA)
    image = QImage(pixels.data, w, h, 4 * w, QImage.Format.Format_RGB32)
    image.setDevicePixelRatio(ratio)
    return image, pixels


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
        self._raw: np.ndarray | None = None  # the camera frame as RGB, in comparison mode
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
        if raw_bgr is not None and self.compare:
            self._raw = np.ascontiguousarray(raw_bgr[..., ::-1])
        self.frames_shown += 1
        self.update()

    def set_compare(self, on: bool) -> None:
        self.compare = on
        if not on:
            self._raw = None
        self.update()

    def clear(self, placeholder: str = "") -> None:
        self._frame = self._raw = None
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
        if self._frame is None:
            if self.placeholder and not self.overlay.isVisible():
                p.setPen(QColor(150, 150, 150))
                f = QFont(p.font())
                f.setPointSizeF(f.pointSizeF() * 1.3)
                p.setFont(f)
                p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.placeholder)
            p.end()
            return
        area = self.rect()
        if self.compare and self._raw is not None:
            half = area.width() // 2
            left = QRect(area.x(), area.y(), half - 2, area.height())
            right = QRect(area.x() + half + 2, area.y(), area.width() - half - 2, area.height())
            self._draw(p, self._raw, left)
            self._draw(p, self._frame, right)
            p.setPen(QColor(230, 230, 230))
            p.drawText(left.adjusted(8, 6, 0, 0), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, "camera")
            p.drawText(right.adjusted(8, 6, 0, 0), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, "stylized")
        else:
            self._draw(p, self._frame, area)
        p.end()

    def _draw(self, p: QPainter, rgb: np.ndarray, area: QRect) -> None:
        target = fit_rect(QSize(rgb.shape[1], rgb.shape[0]), area)
        image, _pixels = screen_image(rgb, target.size(), self.devicePixelRatioF())
        p.drawImage(target.topLeft(), image)
