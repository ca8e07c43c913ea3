"""The "Look" toolbar: strength, keep colours, brush size and the smooth style switch.

Each control writes into the session's `OutputControls` (nstcam.live.controls), the last frame
processor, so the display, recordings and the virtual camera all get it; snapshots read
`look` when they are taken. The brush size is the engine's processing size: a smaller size
paints larger strokes and runs faster, and the label shows the frame rate it costs.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QActionGroup
from PySide6.QtWidgets import QLabel, QMenu, QSlider, QToolButton, QWidget

from nstcam.live.controls import Look, OutputControls
from nstcam.launch import MAX_SIZE
from nstcam.ui.dialogs import key_for
from nstcam.ui.toolbar import make_toolbar, new_action, set_checked_quietly, unfocus

STRENGTH_STEP = 0.1
BRUSH_STEP = 16
MIN_BRUSH_SIZE = 128
COLOR_MODE_TEXT = {"luminance": "Brightness only (the camera's hue and saturation)",
                   "statistics": "Match the camera's average colours"}


class LookBar(QObject):
    """Owns the look toolbar `bar` (the window places it) and its actions (`colors_action`: C);
    `changed` after any control changed (settings, status line)."""

    changed = Signal()

    def __init__(self, engine, controls: OutputControls, parent: QWidget, color_mode: str = "luminance") -> None:
        super().__init__(parent)
        self.controls, self.engine = controls, engine
        self.color_mode = controls.look.colors if controls.look.colors != "off" else color_mode
        bar = self.bar = make_toolbar("Look", "look", parent)

        self.strength = self._slider(0, 100, 5, round(controls.look.strength * 100),
                                     f"How much of the style to apply: 0% is the camera ({key_for('less')})")
        self.strength_label = self._labelled("Strength", self.strength, "100%")
        self.strength.valueChanged.connect(lambda v: self.set_strength(v / 100))

        self.colors_action = new_action("Keep colours", f"Keep the camera's colours, paint only the strokes "
                                        f"({key_for('keep')})", self, self.set_colors_on, checkable=True)
        bar.addAction(self.colors_action)
        menu, group = QMenu(parent), QActionGroup(self)
        self.mode_actions = {}
        for mode, text in COLOR_MODE_TEXT.items():
            act = menu.addAction(text)
            act.setCheckable(True)
            act.setChecked(mode == self.color_mode)
            act.triggered.connect(lambda _=False, m=mode: self.set_color_mode(m))
            group.addAction(act)
            self.mode_actions[mode] = act
        button = unfocus(bar, self.colors_action)
        if button is not None:
            button.setMenu(menu)
            button.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
        bar.addSeparator()

        size = self.engine.size
        high = min(MAX_SIZE, max(480, 2 * (size or 0)))
        self.brush = self._slider(min(MIN_BRUSH_SIZE, size or MIN_BRUSH_SIZE), high, BRUSH_STEP, size or high,
                                  "Brush size: the processing size. Right paints larger strokes and runs faster; "
                                  "left finer strokes, slower")
        self.brush.setInvertedAppearance(True)
        self.brush.setEnabled(size is not None)
        self.brush_label = self._labelled("Brush", self.brush, "")
        self.brush.sliderMoved.connect(self._preview_brush)
        self.brush.valueChanged.connect(lambda v: None if self.brush.isSliderDown() else self.set_brush(v))
        self.brush.sliderReleased.connect(lambda: self.set_brush(self.brush.value()))
        bar.addSeparator()

        self.fade_action = new_action("Smooth switch", "Cross-fade for 0.3 s when the style changes, instead of "
                                      "a hard cut", self, self.set_fade, checkable=True, checked=controls.fade)
        bar.addAction(self.fade_action)
        unfocus(bar, self.fade_action)
        self._sync()

    def _slider(self, low: int, high: int, step: int, value: int, tip: str) -> QSlider:
        slider = QSlider(Qt.Orientation.Horizontal)
        slider.setRange(low, high)
        slider.setSingleStep(step)
        slider.setPageStep(step)
        slider.setValue(value)
        slider.setFixedWidth(130)
        slider.setToolTip(tip)
        slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        return slider

    def _labelled(self, name: str, slider: QSlider, text: str) -> QLabel:
        title, value = QLabel(f" {name} "), QLabel(text)
        title.setToolTip(slider.toolTip())
        value.setMinimumWidth(88 if name == "Brush" else 40)
        for widget in (title, slider, value):
            self.bar.addWidget(widget)
        return value

    # ------------------------------------------------------------------ commands
    @property
    def look(self) -> Look:
        return self.controls.look

    def set_strength(self, value: float) -> None:
        value = round(min(1.0, max(0.0, value)), 2)
        if value != self.look.strength:
            self.controls.look = Look(value, self.look.colors)
            self._sync()
            self.changed.emit()

    def step_strength(self, steps: int) -> None:
        self.set_strength(self.look.strength + steps * STRENGTH_STEP)

    def set_colors_on(self, on: bool) -> None:
        self.set_colors(self.color_mode if on else "off")

    def set_color_mode(self, mode: str) -> None:
        self.color_mode = mode
        self.set_colors(mode)

    def set_colors(self, mode: str) -> None:
        if mode != "off":
            self.color_mode = mode
        if mode != self.look.colors:
            self.controls.look = Look(self.look.strength, mode)
            self._sync()
            self.changed.emit()

    def set_brush(self, size: int) -> None:
        if self.engine.size is not None and size != self.engine.size:
            self.engine.size = int(size)
            self._sync()
            self.changed.emit()

    def set_fade(self, on: bool) -> None:
        if on != self.controls.fade:
            self.controls.fade = on
            self._sync()
            self.changed.emit()

    # ------------------------------------------------------------------ display
    def _sync(self) -> None:
        """Widgets follow the state (whoever changed it: a key, a slider, the settings)."""
        for widget, value in ((self.strength, round(self.look.strength * 100)), (self.brush, self.engine.size)):
            if value is not None and widget.value() != value and not widget.isSliderDown():
                widget.blockSignals(True)
                widget.setValue(value)
                widget.blockSignals(False)
        self.strength_label.setText(f"{self.look.strength:.0%}")
        set_checked_quietly(self.colors_action, self.look.colors != "off")
        set_checked_quietly(self.fade_action, self.controls.fade)
        self.mode_actions[self.color_mode].setChecked(True)
        self.refresh()

    def refresh(self) -> None:
        """The brush label: processing size and the engine's frame rate at it (its max_fps)."""
        size, fps = self.engine.size, self.engine.stats.max_fps
        if not self.brush.isSliderDown():
            rate = f" · {fps:.0f} fps" if fps else ""
            self.brush_label.setText("full size" if size is None else f"{size} px{rate}")

    def _preview_brush(self, size: int) -> None:
        """While dragging: the frame rate to expect, from the pixel count (cost ~ area)."""
        current, fps = self.engine.size, self.engine.stats.max_fps
        guess = f" · ~{fps * (current / size) ** 2:.0f} fps" if fps and current else ""
        self.brush_label.setText(f"{size} px{guess}")

    def describe(self) -> str:
        """What is active, for the status line."""
        parts = [self.look.describe() or "full style"]
        if not self.controls.fade:
            parts.append("hard cuts")
        return " · ".join(parts)
