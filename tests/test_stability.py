"""The stability metric on generated clips whose answer is known, and its CLI."""
from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from nstcam.measure.stability import (
    EDGE_GOAL,
    EmaBlend,
    Motion,
    apply_processors,
    estimate_motion,
    evaluate,
    main,
    object_clip,
    pan_clip,
    standard_clips,
    synthetic_scene,
    video_clip,
    warp_error,
    zoom_clip,
)
from nstcam.live.stabilize import FlowStabilizer
from nstcam_fixtures import write_video

SIZE = (160, 120)
NOISE_MEAN_ABS_DIFF = 3.0 * 2 / math.sqrt(math.pi)  # E|n1 - n2| for two Gaussian noises of sigma 3


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    return synthetic_scene(320, 240, seed=3)


def identity(frames: list[np.ndarray]) -> list[np.ndarray]:
    return [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames]


def boiling(frames: list[np.ndarray], sigma: float = 12.0, seed: int = 1) -> list[np.ndarray]:
    """A fake stylizer that inverts the picture and adds fresh texture noise to every frame, as an
    unstable network does."""
    rng = np.random.default_rng(seed)
    out = []
    for f in frames:
        noisy = 255.0 - cv2.cvtColor(f, cv2.COLOR_BGR2RGB) + rng.normal(0, sigma, f.shape)
        out.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return out


@pytest.mark.parametrize("speed", [1, 2, 3])
def test_pan_motion_is_exact(scene: np.ndarray, speed: int) -> None:
    clip = pan_clip(scene, speed, 6, SIZE, noise=0.0, rng=np.random.default_rng(0))
    assert warp_error(identity(clip.frames), clip.motions, clip.size) == 0.0
    still = [Motion(*np.meshgrid(np.arange(160, dtype=np.float32), np.arange(120, dtype=np.float32)), m.valid)
             for m in clip.motions]
    assert warp_error(identity(clip.frames), still, clip.size) > 5.0  # the motion is really there


def test_identity_on_noisy_pan_scores_the_noise_level(scene: np.ndarray) -> None:
    clip = pan_clip(scene, 2, 8, SIZE, noise=3.0, rng=np.random.default_rng(0))
    figures = evaluate(clip, identity(clip.frames))
    assert figures.input_warp == pytest.approx(NOISE_MEAN_ABS_DIFF, abs=0.25)
    assert figures.warp == pytest.approx(figures.input_warp)
    assert figures.strength == 0.0
    assert figures.edge == pytest.approx(1.0)


def test_zoom_and_object_motion_are_known(scene: np.ndarray) -> None:
    zoom = zoom_clip(scene, 6, SIZE, noise=0.0, rng=np.random.default_rng(0))
    moving = object_clip(scene, 6, SIZE, noise=0.0, rng=np.random.default_rng(0))
    assert warp_error(identity(zoom.frames), zoom.motions, zoom.size) < 2.5  # resampling only
    assert warp_error(identity(moving.frames), moving.motions, moving.size) == 0.0
    assert moving.object_masks is not None and moving.object_masks[0].any()
    assert not np.array_equal(moving.object_masks[0], moving.object_masks[-1])


def test_unstable_stylizer_scores_worse(scene: np.ndarray) -> None:
    clip = pan_clip(scene, 1, 8, SIZE, noise=3.0, rng=np.random.default_rng(0))
    steady, unstable = evaluate(clip, identity(clip.frames)), evaluate(clip, boiling(clip.frames))
    assert unstable.warp > 3 * steady.warp
    assert unstable.input_warp == steady.input_warp
    assert unstable.strength > 50


def test_output_of_another_size_is_measured_at_its_size(scene: np.ndarray) -> None:
    clip = pan_clip(scene, 2, 6, SIZE, noise=0.0, rng=np.random.default_rng(0))
    half = [cv2.resize(f, (80, 60), interpolation=cv2.INTER_AREA) for f in identity(clip.frames)]
    figures = evaluate(clip, half)
    assert figures.warp < 1.0  # a 2 px pan is a 1 px pan at half size
    assert figures.strength == 0.0


def test_lagging_output_lowers_edge_alignment_in_the_band(scene: np.ndarray) -> None:
    clip = object_clip(scene, 8, SIZE, noise=3.0, rng=np.random.default_rng(0))
    current = evaluate(clip, identity(clip.frames))
    late = evaluate(clip, identity(clip.frames[:1] + clip.frames[:-1]))
    assert late.edge_band < 0.8 * current.edge_band
    assert current.edge_band == pytest.approx(1.0)


def test_ema_ghosts_and_flow_stabilizer_does_not(scene: np.ndarray) -> None:
    """The issue's acceptance check: the naive blend fails the ghosting test, ours passes it."""
    clip = object_clip(scene, 12, (320, 240), noise=3.0, rng=np.random.default_rng(0))
    stylized = boiling(clip.frames, sigma=6.0)
    base = evaluate(clip, stylized)
    ema = evaluate(clip, apply_processors(clip.frames, stylized, [EmaBlend(0.7)]))
    flow = evaluate(clip, apply_processors(clip.frames, stylized, [FlowStabilizer()]))
    assert ema.edge_band < EDGE_GOAL * base.edge_band
    assert flow.edge_band >= EDGE_GOAL * base.edge_band
    assert flow.edge >= EDGE_GOAL * base.edge
    assert flow.warp < base.warp


def test_estimated_motion_matches_the_known_one(scene: np.ndarray) -> None:
    clip = pan_clip(scene, 2, 5, SIZE, noise=0.0, rng=np.random.default_rng(0))
    motions = estimate_motion(clip.frames)
    assert len(motions) == 4
    assert np.mean([m.valid.mean() for m in motions]) > 0.6
    shift = np.median(np.concatenate([(m.map_x - clip.motions[0].map_x)[m.valid] for m in motions]))
    assert abs(shift) < 0.25
    assert warp_error(identity(clip.frames), motions, clip.size) < 1.5


def test_video_clip_reads_frames_and_estimates_motion(media_dir: Path) -> None:
    path = write_video(media_dir / "stability.avi", frames=6)
    clip = video_clip(path, size=None, frames=5)
    assert len(clip.frames) == 5 and len(clip.motions) == 4
    assert clip.object_masks is None
    with pytest.raises(ValueError, match="cannot open video"):
        video_clip(media_dir / "missing.avi")


def test_standard_clips_names_and_unknown(scene: np.ndarray) -> None:
    clips = standard_clips(scene, ["pan1", "still"], frames=3, size=SIZE)
    assert [c.name for c in clips] == ["pan1", "still"]
    assert all(len(c.motions) == 2 for c in clips)
    with pytest.raises(ValueError, match="unknown clip"):
        standard_clips(scene, ["spin"], frames=3, size=SIZE)


def test_cli_help_explains_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--images", "--video", "--clips", "--frames", "--size", "--noise", "--styles",
                 "--styles-dir", "--device", "--threads", "--ema", "--seed", "--json"):
        assert flag in text


@pytest.mark.parametrize("argv, message", [
    (["--images", "no/such/photo.jpg"], "cannot read image"),
    (["--clips", "spin"], "unknown clip"),
    (["--frames", "1"], "--frames must be at least 2"),
])
def test_cli_bad_input_is_one_clear_message(tmp_path: Path, argv: list[str], message: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    image = tmp_path / "scene.png"
    cv2.imwrite(str(image), synthetic_scene(200, 150))
    if "--images" not in argv:
        argv = ["--images", str(image), *argv]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_compares_renderers_and_writes_json(tmp_path: Path, style_files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    image = tmp_path / "scene.png"
    cv2.imwrite(str(image), synthetic_scene(200, 150))
    out = tmp_path / "stability.json"
    code = main(["--images", str(image), "--clips", "pan1,object", "--frames", "4", "--size", "128x96",
                 "--styles-dir", str(style_files["alpha"].parent), "--styles", "alpha", "--ema", "0.7",
                 "--json", str(out)])
    assert code == 0
    data = json.loads(out.read_text())
    assert {(r["clip"], r["renderer"]) for r in data["rows"]} == {
        (c, r) for c in ("pan1", "object") for r in ("baseline", "stabilized", "ema")}
    summary = {r["renderer"]: r for r in data["summary"]}
    assert summary["stabilized"]["style"] == "alpha" and summary["stabilized"]["ms"] > 0
    assert "pan1 warp x" in capsys.readouterr().out


def test_engine_stylizer_runs_engine_then_processors(style_models: dict,
                                                     scene: np.ndarray) -> None:
    from nstcam.engines.torch_engine import StyleEngine
    from nstcam.measure.stability import FrameTimes, engine_stylizer

    engine = StyleEngine(style_models, device="cpu", size=None, precision="fp32")
    clip = pan_clip(scene, 1, 4, (96, 64), noise=3.0, rng=np.random.default_rng(0))
    times = FrameTimes()
    plain = engine_stylizer(engine, "beta")(clip.frames)
    stabilized = engine_stylizer(engine, "beta", [FlowStabilizer()], times)(clip.frames)
    assert [o.shape for o in stabilized] == [(64, 96, 3)] * 4
    np.testing.assert_array_equal(stabilized[0], plain[0])  # the first frame has no history
    assert not np.array_equal(stabilized[-1], plain[-1])
    assert len(times.wall) == len(times.cpu) == 4 and min(times.medians()) > 0


def test_cli_measures_videos(media_dir: Path, style_files: dict[str, Path],
                             capsys: pytest.CaptureFixture[str]) -> None:
    first = write_video(media_dir / "first.avi", frames=5)
    second = write_video(media_dir / "second.avi", frames=5)
    code = main(["--video", str(first), str(second), "--size", "96x64", "--styles-dir",
                 str(style_files["alpha"].parent), "--styles", "alpha"])
    assert code == 0
    out = capsys.readouterr().out
    assert "first warp x" in out and "second warp x" in out
