"""Output controls without Qt: strength, original colours, the style cross-fade, recording size."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from nstcam.live.controls import (FADE_SECONDS, CameraSizeRecorderSink, Look, OutputControls, apply_look,
                             apply_look_to_files, at_camera_size, input_at)
from nstcam.live.pipeline import FramePath, FrameResult
from nstcam.live.recorder import Recorder


def camera_frame(w: int = 96, h: int = 64) -> np.ndarray:
    """A colourful BGR frame: a hue ramp with a bright disc."""
    hue = np.tile(np.linspace(0, 179, w, dtype=np.float32), (h, 1)).astype(np.uint8)
    value = np.linspace(60, 230, h, dtype=np.uint8)[:, None].repeat(w, 1)
    hsv = np.dstack([hue, np.full((h, w), 200, np.uint8), value])
    bgr = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    cv2.circle(bgr, (w // 3, h // 2), h // 4, (250, 250, 250), -1)
    return bgr


def painted(bgr: np.ndarray, tint=(230, 120, 20)) -> np.ndarray:
    """A stand-in for a style network: strong orange tint and stripes, RGB."""
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32)
    stripes = (np.indices(rgb.shape[:2]).sum(0) % 6 < 3)[..., None] * 40.0
    return np.clip(0.4 * rgb + 0.6 * np.array(tint, np.float32) + stripes - 20, 0, 255).astype(np.uint8)


def chroma(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)[..., 1:].astype(float)


def test_strength_zero_is_the_input_and_one_the_stylized_frame():
    raw = camera_frame()
    stylized = painted(raw)
    assert np.array_equal(apply_look(raw, stylized, Look(0.0)), cv2.cvtColor(raw, cv2.COLOR_BGR2RGB))
    assert apply_look(raw, stylized, Look(1.0)) is stylized
    half = apply_look(raw, stylized, Look(0.5)).astype(float)
    expected = 0.5 * stylized + 0.5 * cv2.cvtColor(raw, cv2.COLOR_BGR2RGB)
    assert np.abs(half - expected).max() <= 1.0
    # a processing-size frame is blended with the input shrunk to it
    small = cv2.resize(stylized, (48, 32))
    assert np.array_equal(apply_look(raw, small, Look(0.0)), input_at(raw, (48, 32)))


def test_keep_colours_takes_the_inputs_chroma_and_the_outputs_luminance():
    raw = camera_frame()
    stylized = painted(raw)
    out = apply_look(raw, stylized, Look(colors="luminance"))
    original = cv2.cvtColor(raw, cv2.COLOR_BGR2RGB)
    assert np.abs(chroma(stylized) - chroma(original)).mean() > 15  # the tint changed the colours
    assert np.abs(chroma(out) - chroma(original)).mean() < 3  # ... and they are back
    luma = lambda rgb: cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)[..., 0].astype(float)  # noqa: E731
    assert np.abs(luma(out) - luma(stylized)).mean() < 3  # the strokes (luminance) stay


def test_colour_statistics_mode_moves_the_palette_to_the_inputs():
    raw = camera_frame()
    stylized = painted(raw)
    out = apply_look(raw, stylized, Look(colors="statistics"))
    lab = lambda rgb: cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab).reshape(-1, 3).astype(float)  # noqa: E731
    original = cv2.cvtColor(raw, cv2.COLOR_BGR2RGB)
    before = np.abs(lab(stylized).mean(0) - lab(original).mean(0)).max()
    after = np.abs(lab(out).mean(0) - lab(original).mean(0)).max()
    assert before > 15 and after < 4


def test_look_is_validated_and_described():
    with pytest.raises(ValueError, match="strength"):
        Look(1.5)
    with pytest.raises(ValueError, match="colour mode"):
        Look(colors="sepia")
    assert Look().describe() == "" and Look().neutral
    assert Look(0.6, "luminance").describe() == "strength 60% · colours kept"


class TwoStyleEngine:
    """A fake engine: style "a" paints red, "b" blue; counts the calls."""

    style_names = ["a", "b"]

    def __init__(self) -> None:
        self.style = "a"
        self.calls: list[str] = []

    def stylize(self, frame_bgr, style=None):
        style = style or self.style
        self.calls.append(style)
        out = np.zeros_like(frame_bgr)
        out[..., 0 if style == "a" else 2] = 200
        return out

    def set_style(self, name):
        self.style = name


def test_style_switch_cross_fades_through_intermediate_frames():
    engine = TwoStyleEngine()
    now = [0.0]
    controls = OutputControls(engine, clock=lambda: now[0])
    path = FramePath(engine, [controls])
    raw = camera_frame()
    assert path.run(raw, seq=1, t_captured=0.0).stylized_rgb[0, 0].tolist() == [200, 0, 0]
    engine.set_style("b")
    controls.fade_from("a")
    reds = []
    for i in range(2, 12):
        now[0] = (i - 1) * FADE_SECONDS / 6
        reds.append(int(path.run(raw, seq=i, t_captured=now[0]).stylized_rgb[0, 0, 0]))
    middle = [r for r in reds if 0 < r < 200]
    assert len(middle) >= 3 and reds == sorted(reds, reverse=True)  # red fades out step by step
    assert reds[-1] == 0 and not controls.fading
    assert "a" in engine.calls[2:]  # the old style was rendered live during the fade

    controls.fade = False  # turned off: a hard cut
    engine.set_style("a")
    controls.fade_from("b")
    assert path.run(raw, seq=20, t_captured=10.0).stylized_rgb[0, 0].tolist() == [200, 0, 0]


def test_a_slow_engine_still_shows_intermediate_frames():
    engine = TwoStyleEngine()
    now = [0.0]
    controls = OutputControls(engine, clock=lambda: now[0])
    engine.set_style("b")
    controls.fade_from("a")
    raw = camera_frame()
    reds = []
    for _ in range(4):
        now[0] += 0.5  # each frame takes longer than the whole fade
        reds.append(int(controls.process(raw, engine.stylize(raw))[0, 0, 0]))
    assert 0 < reds[0] < 200 and 0 < reds[1] < 200 and reds[-1] == 0


def test_recording_at_camera_size_upscales_the_stylized_frame(tmp_path):
    raw = camera_frame(96, 64)
    result = FrameResult(seq=1, raw_bgr=raw, stylized_rgb=painted(cv2.resize(raw, (48, 32))), style="a",
                         latency_ms=0.0, engine_fps=0.0)
    assert at_camera_size(result).stylized_rgb.shape == (64, 96, 3)
    sink = CameraSizeRecorderSink(Recorder(tmp_path / "clip.avi", 30.0, realtime=False))
    sink.offer(result)
    assert sink.close(10.0)
    assert sink.recorder.size == (96, 64) and sink.recorder.frames_written == 1


def test_look_applied_to_saved_snapshot_files(tmp_path):
    raw = camera_frame()
    path = tmp_path / "snap_stylized.png"
    cv2.imwrite(str(path), cv2.cvtColor(painted(raw), cv2.COLOR_RGB2BGR))
    apply_look_to_files(raw, [path], Look(0.0))
    assert np.array_equal(cv2.imread(str(path)), raw)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snap_stylized.png"]  # no temporary left
