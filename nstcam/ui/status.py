"""The status line: measured rates, latency, device, messages, and the recording indicator.

    camera 30.0 fps | stylize 12.4 fps | latency 95 ms | cpu fp32 | strength 60% | [message…]
                                                            ⚠ 1 style file…   ● REC 0:07 · 640×480 camera

Figures are read from the capture thread and the engine by the window's timer (twice a second),
never pushed per frame. When the camera delivers but no stylized frame comes (an engine process
stopped, a stylize call that hangs), `StallWatch` says so instead of a silent "stylize 0.0 fps". Messages (camera problems, engine notices) stay until replaced; the
latest few are kept in `history` and shown as the tooltip. A long message is elided in the middle
(paths keep their file name), so the REC indicator at the right edge is always visible.
"""
from __future__ import annotations

import time
from collections import deque

from PySide6.QtCore import Qt
from PySide6.QtGui import QPaintEvent, QPainter
from PySide6.QtWidgets import QLabel, QPushButton, QSizePolicy, QStatusBar, QWidget


def format_elapsed(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class StallWatch:
    """Notices stylized frames stopping while frames are expected: the camera delivered within
    the last `seconds` and the session is not paused (a snapshot refining). The wait is counted
    only while frames are expected, from the first frame shown, and must pass both `seconds` and
    four of the engine's frame times (a slow engine is not a stalled one)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.stalled = False
        self.waiting_since: float | None = None  # None until the first frame
        self._captured, self._captured_at = -1, 0.0

    def frame_shown(self, now: float) -> bool:
        """A stylized frame was shown; True if it ends a stall."""
        ended, self.stalled = self.stalled, False
        self.waiting_since = now
        return ended

    def check(self, now: float, frames_captured: int, paused: bool, frame_seconds: float) -> bool:
        """Called regularly; True once, when a stall begins."""
        if frames_captured != self._captured:
            self._captured, self._captured_at = frames_captured, now
        expecting = not paused and now - self._captured_at < self.seconds
        if self.waiting_since is None or self.stalled:
            return False
        if not expecting:
            self.waiting_since = now
            return False
        self.stalled = now - self.waiting_since > max(self.seconds, 4 * frame_seconds)
        return self.stalled

    def waited(self, now: float) -> float:
        return 0.0 if self.waiting_since is None else now - self.waiting_since


class ElidedLabel(QLabel):
    """A one-line label that never asks for more width than it gets: the text is elided to fit
    (`mode`: where)."""

    def __init__(self, text: str = "", mode: Qt.TextElideMode = Qt.TextElideMode.ElideMiddle) -> None:
        super().__init__(text)
        self.mode = mode
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        painter = QPainter(self)
        rect = self.contentsRect()
        shown = self.fontMetrics().elidedText(self.text(), self.mode, rect.width())
        painter.drawText(rect, int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft), shown)


class StatusPanel(QStatusBar):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizeGripEnabled(False)
        self.capture_label = QLabel("camera –")
        self.stylize_label = QLabel("stylize –")
        self.latency_label = QLabel("latency –")
        # The engine's description is long (backend, lanes, auto's reason, size, in-betweens): it
        # shares the width with the messages, 1 to 2, instead of leaving them a few letters.
        self.device_label = ElidedLabel("", Qt.TextElideMode.ElideRight)
        self.controls_label = QLabel("")
        self.message_label = ElidedLabel("")
        self.broken_button = QPushButton("")
        self.broken_button.setFlat(True)
        self.broken_button.setStyleSheet("color: #ff8a65;")
        self.broken_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.broken_button.hide()
        self.record_label = QLabel("")
        self.record_label.setStyleSheet("color: #e53935; font-weight: bold;")
        self.record_label.hide()
        for w in (self.capture_label, self.stylize_label, self.latency_label, self.device_label,
                  self.controls_label, self.message_label):
            w.setContentsMargins(6, 0, 6, 0)
        for w in (self.capture_label, self.stylize_label, self.latency_label):
            self.addWidget(w)
        self.addWidget(self.device_label, 1)
        self.addWidget(self.controls_label)
        self.addWidget(self.message_label, 2)
        self.addPermanentWidget(self.broken_button)
        self.addPermanentWidget(self.record_label)
        self.history: deque[tuple[float, str]] = deque(maxlen=20)

    def set_figures(self, capture_fps: float, stylize_fps: float, latency_ms: float | None,
                    device: str, dropped: int | None = None, stalled: bool = False) -> None:
        """`stalled`: the engine is not responding (StallWatch); the stylize figure says so."""
        self.capture_label.setText(f"camera {capture_fps:.1f} fps")
        self.stylize_label.setText("stylize – not responding" if stalled else f"stylize {stylize_fps:.1f} fps")
        self.stylize_label.setStyleSheet("color: #ff8a65;" if stalled else "")
        self.latency_label.setText("latency –" if latency_ms is None else f"latency {latency_ms:.0f} ms")
        self.device_label.setText(device)
        self.device_label.setToolTip(device)

    def show_status(self, text: str, error: bool = False) -> None:
        self.history.append((time.time(), text))
        self.message_label.setText(text)
        self.message_label.setStyleSheet("color: #ff8a65;" if error else "")
        self.message_label.update()
        self.message_label.setToolTip("\n".join(
            f"{time.strftime('%H:%M:%S', time.localtime(t))}  {m}" for t, m in self.history))

    @property
    def message(self) -> str:
        return self.message_label.text()

    def set_recording(self, seconds: float | None, path: str = "", size: str = "") -> None:
        """`size`: what is recorded, e.g. "1280×720 camera"; shown after the time."""
        if seconds is None:
            self.record_label.hide()
            return
        self.record_label.setText(f"● REC {format_elapsed(seconds)}" + (f" · {size}" if size else ""))
        self.record_label.setToolTip(path)
        self.record_label.show()

    def set_broken_styles(self, count: int) -> None:
        """The "⚠ N style files could not be loaded" button (the window connects its click)."""
        self.broken_button.setText(f"⚠ {count} style file{'s' if count != 1 else ''} could not be loaded…")
        self.broken_button.setToolTip("Which files, and why")
        self.broken_button.setVisible(count > 0)
