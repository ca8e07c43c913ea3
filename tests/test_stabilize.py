"""FlowStabilizer: pass-through and resets, scene cuts, steadier pans, no trails behind moving objects."""
from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from nstcam.measure.stability import apply_processors, evaluate, object_clip, pan_clip, still_clip, synthetic_scene
from nstcam.live.stabilize import FlowStabilizer, shift_levels

SIZE = (320, 240)


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    return synthetic_scene(480, 360, seed=5)


def unstable_style(frames: list[np.ndarray], seed: int = 0) -> list[np.ndarray]:
    """A fake stylizer: a colour change that follows the picture plus texture that is new in every
    frame, which is how an aliasing style network boils under motion."""
    rng = np.random.default_rng(seed)
    out = []
    for f in frames:
        rgb = cv2.cvtColor(f, cv2.COLOR_BGR2RGB).astype(np.float32)
        out.append(np.clip(255.0 - rgb + rng.normal(0, 12, f.shape), 0, 255).astype(np.uint8))
    return out


def test_first_frame_passes_through_unchanged(scene: np.ndarray) -> None:
    clip = pan_clip(scene, 1, 2, SIZE, noise=3.0, rng=np.random.default_rng(0))
    stylized = unstable_style(clip.frames)
    stab = FlowStabilizer()
    first = stab.process(clip.frames[0], stylized[0])
    np.testing.assert_array_equal(first, stylized[0])
    second = stab.process(clip.frames[1], stylized[1])
    assert second.shape == stylized[1].shape and second.dtype == np.uint8
    assert not np.array_equal(second, stylized[1])  # the history is used from the second frame on


def test_reset_forgets_the_history(scene: np.ndarray) -> None:
    clip = pan_clip(scene, 1, 4, SIZE, noise=3.0, rng=np.random.default_rng(0))
    stylized = unstable_style(clip.frames)
    stab = FlowStabilizer()
    for raw, out in zip(clip.frames[:3], stylized[:3]):
        stab.process(raw, out)
    stab.reset()
    np.testing.assert_array_equal(stab.process(clip.frames[3], stylized[3]), stylized[3])
    assert stab.cuts == 0


def test_scene_cut_resets_by_itself(scene: np.ndarray) -> None:
    before = pan_clip(scene, 1, 3, SIZE, noise=3.0, rng=np.random.default_rng(0))
    after = still_clip(synthetic_scene(480, 360, seed=9), 2, SIZE, noise=3.0, rng=np.random.default_rng(1))
    frames = before.frames + after.frames
    stylized = unstable_style(frames)
    stab = FlowStabilizer()
    outputs = [stab.process(raw, out) for raw, out in zip(frames, stylized)]
    assert stab.cuts == 1
    np.testing.assert_array_equal(outputs[3], stylized[3])  # the first frame of the new scene
    assert not np.array_equal(outputs[4], stylized[4])  # and the new history starts there


def test_new_content_shows_at_once(scene: np.ndarray) -> None:
    """Something that appears without moving in (a light switched on) is not blended with the past."""
    clip = still_clip(scene, 4, SIZE, noise=3.0, rng=np.random.default_rng(0))
    frames = [f.copy() for f in clip.frames]
    cv2.rectangle(frames[3], (120, 80), (200, 160), (255, 255, 255), -1)
    stylized = unstable_style(frames)
    stab = FlowStabilizer()
    outputs = [stab.process(raw, out) for raw, out in zip(frames, stylized)]
    inner = (slice(95, 145), slice(135, 185))
    np.testing.assert_array_equal(outputs[3][inner], stylized[3][inner])
    assert stab.cuts == 0
    background = np.ones(SIZE[::-1], bool)
    background[60:180, 100:220] = False
    change = outputs[3][background].mean(axis=0) - outputs[2][background].mean(axis=0)
    assert np.all(np.abs(change) < 1.0), change  # the rest of the picture does not take the new light's colour


@pytest.mark.parametrize("ramp", [(4.0, 4.0, 4.0), (4.0, 0.0, 0.0)], ids=["exposure", "white-balance"])
def test_a_colour_ramp_reaches_the_output_at_once(scene: np.ndarray, ramp: tuple[float, float, float]) -> None:
    """A camera's auto-exposure or white balance, a dimming light: the history is kept (no cuts),
    and each channel of the output follows the new frames within about a frame's change (it lagged
    18 grey levels on this ramp of 4 a frame); a channel that does not change stays put."""
    clip = still_clip(scene, 10, SIZE, noise=3.0, rng=np.random.default_rng(0))
    frames = [cv2.add(f, (*(i * r for r in ramp), 0.0)) for i, f in enumerate(clip.frames)]
    stylized = unstable_style(frames)
    stab = FlowStabilizer()
    outputs = [stab.process(raw, out) for raw, out in zip(frames, stylized)]
    assert stab.cuts == 0
    lags = np.array([[abs(float(out[..., c].mean()) - float(sty[..., c].mean())) for c in range(3)]
                     for out, sty in zip(outputs[1:], stylized[1:])]).max(axis=0)
    ramped = np.array(ramp[::-1]) > 0  # the fake style is RGB: the BGR ramp's channels reversed
    assert np.all(lags[ramped] < 5.0) and np.all(lags[~ramped] < 1.0), lags
    assert not np.array_equal(outputs[-1], stylized[-1])  # still stabilized, not passed through


def test_stylized_size_differs_from_raw(scene: np.ndarray) -> None:
    clip = pan_clip(scene, 2, 4, SIZE, noise=3.0, rng=np.random.default_rng(0))
    small = [cv2.resize(s, (160, 120), interpolation=cv2.INTER_AREA) for s in unstable_style(clip.frames)]
    stab = FlowStabilizer()
    outputs = [stab.process(raw, out) for raw, out in zip(clip.frames, small)]
    assert all(o.shape == (120, 160, 3) for o in outputs)
    assert stab.cuts == 0
    resized = stab.process(clip.frames[0], unstable_style(clip.frames[:1])[0])  # size change: starts over
    assert resized.shape == (240, 320, 3)


@pytest.mark.parametrize("speed", [1, 3])
def test_pan_is_steadier_and_keeps_its_style(scene: np.ndarray, speed: int) -> None:
    clip = pan_clip(scene, speed, 10, SIZE, noise=3.0, rng=np.random.default_rng(0))
    stylized = unstable_style(clip.frames)
    base = evaluate(clip, stylized)
    stab = evaluate(clip, apply_processors(clip.frames, stylized, [FlowStabilizer()]))
    assert stab.warp < 0.4 * base.warp
    assert stab.strength > 0.95 * base.strength
    assert stab.edge >= 0.95 * base.edge


def test_no_ghosting_around_a_moving_object(scene: np.ndarray) -> None:
    clip = object_clip(scene, 10, SIZE, noise=3.0, rng=np.random.default_rng(0))
    stylized = unstable_style(clip.frames)
    base = evaluate(clip, stylized)
    stab = evaluate(clip, apply_processors(clip.frames, stylized, [FlowStabilizer()]))
    assert stab.edge_band >= 0.95 * base.edge_band
    assert stab.warp < 0.5 * base.warp


@pytest.mark.parametrize("kwargs", [{"keep": 1.0}, {"keep": -0.1}, {"flow_scale": 0.0}, {"flow_scale": 1.5},
                                    {"colour_follow": -0.1}, {"colour_follow": 1.5}])
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        FlowStabilizer(**kwargs)


def test_reset_from_another_thread_while_processing(scene: np.ndarray, no_leftover_threads: None) -> None:
    clip = pan_clip(scene, 1, 12, SIZE, noise=3.0, rng=np.random.default_rng(0))
    stylized = unstable_style(clip.frames)
    stab = FlowStabilizer()
    done = threading.Event()

    def keep_resetting() -> None:
        while not done.is_set():
            stab.reset()

    worker = threading.Thread(target=keep_resetting)
    worker.start()
    try:
        outputs = [stab.process(raw, out) for raw, out in zip(clip.frames, stylized)]
    finally:
        done.set()
        worker.join(timeout=5)
    assert not worker.is_alive()
    assert all(o.shape == stylized[0].shape for o in outputs)


def test_bad_frames_are_refused() -> None:
    stab = FlowStabilizer()
    with pytest.raises(ValueError, match="stylized_rgb"):
        stab.process(np.zeros((24, 32, 3), np.uint8), np.zeros((24, 32), np.uint8))
    with pytest.raises(ValueError, match="raw_bgr"):
        stab.process(np.zeros((24, 32, 3), np.float32), np.zeros((24, 32, 3), np.uint8))


@pytest.mark.parametrize("size", [(8, 8), (16, 12), (20, 16), (12, 64)])
def test_frames_smaller_than_the_optical_flow_allows_are_stabilized_too(size: tuple[int, int]) -> None:
    """DIS refuses images under 12 px on the longer side; half of a 16x12 frame used to reach it (cv2.error)."""
    w, h = size
    rng = np.random.default_rng(3)
    raw = rng.integers(0, 256, (h, w, 3), np.uint8)
    stab = FlowStabilizer()
    outputs = [stab.process(raw, rng.integers(0, 256, (h, w, 3), np.uint8)) for _ in range(3)]
    assert all(out.shape == (h, w, 3) for out in outputs)
    assert stab.cuts == 0  # a still scene: the history was carried, not restarted


@pytest.mark.parametrize("offset", [[3.2, -1.7, 0.4], [-300.0, 0.5, 255.6], [0.0, 0.0, 0.0]])
def test_shifting_levels_rounds_and_saturates_as_opencv_adds(offset: list[float]) -> None:
    picture = np.random.default_rng(2).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    assert np.array_equal(shift_levels(picture, offset), cv2.add(picture, (*offset, 0.0)))
