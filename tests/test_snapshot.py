"""nstcam.jobs.snapshot: full-resolution stylize + coarse-to-fine Gatys refinement, three PNGs, cancel,
budget, and saving without torch."""
from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from nstcam.jobs import snapshot
from nstcam.engines.torch_engine import StyleEngine
from nstcam.registry import StyleRegistry
from nstcam_fixtures import fill, make_style, make_styles_dir, pattern_image


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> StyleRegistry:
    folder = make_styles_dir(tmp_path_factory.mktemp("styles"))
    make_style(folder / "bare.pt", "bare", seed=7, with_targets=False)
    return StyleRegistry.discover([folder])


@pytest.fixture(scope="module")
def engine(registry) -> StyleEngine:
    return StyleEngine(registry.select("cpu"), device="cpu", size=48)


def camera_frame(w: int = 96, h: int = 72) -> np.ndarray:
    """A BGR 'camera frame' with some structure."""
    img = cv2.resize(pattern_image(64, seed=5), (w, h), interpolation=cv2.INTER_LINEAR)
    cv2.circle(img, (w // 3, h // 2), h // 4, (250, 240, 30), -1)
    return cv2.cvtColor(img, cv2.COLOR_RGB2BGR)


def read_png(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, path
    return img


def test_snapshot_writes_three_pngs_and_refinement_lowers_style_loss(registry, engine, tmp_path):
    frame = camera_frame()
    model = registry.choose("ember", "cpu").model
    steps_seen: list[int] = []
    res = snapshot.take_snapshot(frame, engine, model, tmp_path, steps=8, refine_side=None,
                                 progress=lambda s, t, losses: steps_seen.append(s))
    assert not res.cancelled
    assert res.raw_path.parent == tmp_path
    for path in (res.raw_path, res.stylized_path, res.refined_path):
        assert path is not None and path.is_file()
        assert read_png(path).shape == frame.shape  # full camera resolution
    assert "ember" in res.raw_path.name and res.raw_path.name.endswith("_raw.png")
    assert np.array_equal(read_png(res.raw_path), frame)  # lossless raw frame
    assert steps_seen == list(range(1, 9))
    assert res.steps_done == 8
    assert res.style_loss_after < res.style_loss_before
    assert res.refine_size == (96, 72)
    # the refined image really differs from the fast network's output, as the result reports
    diff = np.abs(read_png(res.refined_path).astype(int) - read_png(res.stylized_path).astype(int)).mean()
    assert diff > 0.5 and res.mean_change == pytest.approx(diff, abs=0.01)


@pytest.mark.parametrize("size, steps, scales, per_scale", [
    ((1280, 720), 40, (0.25, 0.5, 1.0), [18, 17, 5]),
    ((640, 480), 40, (0.5, 1.0), [35, 5]),
    ((96, 72), 8, (1.0,), [8]),
    ((1280, 720), 1, (1.0,), [1]),
    ((1280, 720), 2, (0.25, 1.0), [1, 1]),
])
def test_refine_schedule_halves_down_to_the_coarse_side(size, steps, scales, per_scale):
    assert snapshot.refine_schedule(size, steps) == (scales, per_scale)


def test_refinement_runs_coarse_to_fine_at_full_resolution(registry, engine, tmp_path, monkeypatch):
    monkeypatch.setattr(snapshot, "COARSE_SIDE", 18)  # a 96x72 frame: 24x18, 48x36, 96x72
    frame = camera_frame()
    totals: list[int] = []
    res = snapshot.take_snapshot(frame, engine, registry.choose("ember", "cpu").model, tmp_path, steps=8,
                                 progress=lambda s, t, losses: totals.append(t))
    assert res.steps_done == 8 and totals == [8] * 8
    assert res.refine_size == (96, 72) and read_png(res.refined_path).shape == frame.shape
    assert res.style_loss_after < res.style_loss_before
    assert res.mean_change > 0.5


def test_snapshot_never_overwrites(registry, engine, tmp_path):
    frame = camera_frame(64, 48)
    model = registry.choose("glacier", "cpu").model
    a = snapshot.take_snapshot(frame, engine, model, tmp_path, refine=False)
    b = snapshot.take_snapshot(frame, engine, model, tmp_path, refine=False)
    assert a.raw_path != b.raw_path and a.stylized_path != b.stylized_path
    assert a.refined_path is None and b.refined_path is None
    assert len(list(tmp_path.glob("*.png"))) == 4
    assert not [p for p in tmp_path.iterdir() if p.stat().st_size == 0]  # no leftover placeholder


def test_refinement_at_reduced_scale_keeps_full_resolution(registry, engine, tmp_path):
    frame = camera_frame(160, 120)
    model = registry.choose("moss", "cpu").model
    res = snapshot.take_snapshot(frame, engine, model, tmp_path, steps=3, refine_side=48)
    assert res.refine_size == (64, 48)
    refined, stylized = read_png(res.refined_path), read_png(res.stylized_path)
    assert refined.shape == (120, 160, 3)
    assert res.style_loss_after < res.style_loss_before
    # the change is carried over smoothly: the stylized frame's pixel detail survives
    change = refined.astype(np.float32) - stylized.astype(np.float32)
    detail = np.abs(cv2.Laplacian(change, cv2.CV_32F)).mean()
    assert detail < 0.5 * np.abs(cv2.Laplacian(stylized.astype(np.float32), cv2.CV_32F)).mean()


def test_cancel_stops_refinement_promptly(registry, engine, tmp_path):
    frame = camera_frame()
    model = registry.choose("ember", "cpu").model
    seen: list[int] = []
    t0 = time.perf_counter()
    res = snapshot.take_snapshot(frame, engine, model, tmp_path, steps=500, refine_side=None,
                                 progress=lambda s, t, losses: seen.append(s),
                                 should_stop=lambda: len(seen) >= 2)
    elapsed = time.perf_counter() - t0
    assert res.cancelled
    assert res.refined_path is None
    assert res.steps_done == 2
    assert res.raw_path.is_file() and res.stylized_path.is_file()
    assert not list(tmp_path.glob("*_refined.png"))
    assert elapsed < 60  # 500 steps would take far longer


def test_style_without_targets_is_a_clear_error(registry, engine, tmp_path):
    model = registry.choose("bare", "cpu").model
    with pytest.raises(snapshot.SnapshotError, match="no Gram targets for the loss net 'efficientnet-lite0'"):
        snapshot.take_snapshot(camera_frame(), engine, model, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not snapshot.has_refine_targets(model)
    assert snapshot.refine_unavailable(model) == "this style has no efficientnet-lite0 Gram targets to refine with"
    assert snapshot.refine_unavailable(registry.choose("ember", "cpu").model) is None
    # ... but it can still be saved unrefined
    res = snapshot.take_snapshot(camera_frame(), engine, model, tmp_path / "out", refine=False)
    assert res.refined_path is None and res.stylized_path.is_file()


def test_loss_net_is_built_once():
    a = snapshot.get_loss_net("efficientnet-lite0", "cpu")
    b = snapshot.get_loss_net("efficientnet-lite0", "cpu")
    assert a is b


def test_time_budget_keeps_the_best_image_so_far(registry, engine, tmp_path):
    seen: list[int] = []
    res = snapshot.take_snapshot(camera_frame(), engine, registry.choose("moss", "cpu").model, tmp_path,
                                 steps=500, refine_side=None, time_budget=0.0,
                                 progress=lambda s, t, losses: seen.append(s))
    assert res.out_of_time and not res.cancelled
    assert res.steps_done == 0 and res.refined_path is None and not seen


@pytest.mark.slow
def test_720p_snapshot_within_budget(registry, engine, tmp_path):
    """The default settings take a 1280x720 snapshot in under a minute, even on a busy CPU (the
    time budget trims the refinement there; idle, all DEFAULT_STEPS fit)."""
    frame = cv2.resize(camera_frame(), (1280, 720), interpolation=cv2.INTER_LINEAR)
    model = registry.choose("ember", "cpu").model
    snapshot.get_loss_net()  # built once per process; not part of a snapshot's cost
    res = snapshot.take_snapshot(frame, engine, model, tmp_path)
    assert not res.cancelled and res.refined_path is not None
    assert res.refine_size == (1280, 720)  # coarse to fine, ending at full resolution
    assert res.steps_done == snapshot.DEFAULT_STEPS or res.out_of_time
    assert res.style_loss_after < res.style_loss_before
    assert read_png(res.refined_path).shape == (720, 1280, 3)
    assert res.seconds < 60, res


def test_refinement_uses_the_layers_the_targets_cover(registry):
    """A style trained on fewer layers than the net's defaults (no stage5 Gram) still refines;
    weights are the net's Gatys defaults with the stronger refinement TV weight; the style's own
    feature smoothing is kept."""
    from trainer.lossnets import DEFAULT_WEIGHTS

    net = snapshot.get_loss_net()
    model = registry.choose("ember", "cpu").model
    defaults = DEFAULT_WEIGHTS[net.name]
    trimmed = type(model)(model.config, model.state_dict, {"name": "x"},
                          {net.name: {k: v for k, v in model.style_targets[net.name].items() if k != "stage5"}})
    settings = snapshot._loss_settings(trimmed, net, defaults)
    assert set(settings["style_layers"]) == set(net.style_weights) - {"stage5"}
    assert settings["style_weight"] == defaults.style and settings["content_weight"] == defaults.content
    assert settings["tv_weight"] == pytest.approx(defaults.tv * snapshot.REFINE_TV_SCALE)
    assert settings["smoothing"] == 0.0
    meta = {"name": "x", "loss_net": net.name, "style_layers": {"stem": 1.0, "stage2": 0.5}, "content_layer": "stage2",
            "style_weight": 25.0, "smoothing": 0.5}
    trained = type(model)(model.config, model.state_dict, meta, model.style_targets)
    settings = snapshot._loss_settings(trained, net, defaults)
    assert settings["style_layers"] == {"stem": 1.0, "stage2": 0.5} and settings["content_layer"] == "stage2"
    assert settings["style_weight"] == defaults.style and settings["smoothing"] == 0.5


def test_a_full_disk_leaves_no_truncated_png_and_no_placeholder(registry, engine, small_disk):
    fill(small_disk)
    with pytest.raises(snapshot.SnapshotError) as info:
        snapshot.take_snapshot(camera_frame(), engine, registry.choose("ember", "cpu").model, small_disk,
                               refine=False, style="ember")
    message = str(info.value)
    assert message.startswith(f"could not write {small_disk}/") and "_raw.png (No space left on device)" in message
    assert message.endswith("; nothing was saved")
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


def test_a_read_only_folder_is_one_clear_snapshot_error(registry, engine, readonly_dir):
    with pytest.raises(snapshot.SnapshotError) as info:
        snapshot.take_snapshot(camera_frame(), engine, registry.choose("ember", "cpu").model, readonly_dir,
                               refine=False, style="ember")
    message = str(info.value)
    assert message.startswith(f"could not write {readonly_dir}/") and message.endswith(
        "_raw.png (Read-only file system); nothing was saved")


def test_a_failed_write_keeps_the_finished_pngs_only(registry, engine, tmp_path, monkeypatch):
    real, calls = snapshot.atomic_write_bytes, []

    def second_write_fails(path, data, **kw):
        calls.append(Path(path))
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, data, **kw)

    monkeypatch.setattr(snapshot, "atomic_write_bytes", second_write_fails)
    with pytest.raises(snapshot.SnapshotError, match=r"_stylized\.png \(No space left on device\); kept .*_raw\.png$"):
        snapshot.take_snapshot(camera_frame(), engine, registry.choose("ember", "cpu").model, tmp_path,
                               refine=False, style="ember")
    assert [p.name for p in tmp_path.iterdir()] == [calls[0].name]
    assert read_png(calls[0]).shape == (72, 96, 3)


@pytest.mark.slow
def test_without_torch_the_raw_and_stylized_frames_are_saved(tmp_path):
    """With torch unimportable (the torch-free runtime), a snapshot saves the camera frame and the
    stylized one, and says that refinement needs torch."""
    script = textwrap.dedent("""
        import sys
        sys.modules["torch"] = None  # import torch now raises ImportError
        from pathlib import Path
        from types import SimpleNamespace
        import numpy as np
        from nstcam.jobs import snapshot

        class Engine:  # an engine with StyleEngine's interface, as nstcam.engines.ort's
            style_names = ["ink"]
            def stylize(self, frame, style=None, size=None):
                return np.ascontiguousarray(255 - frame[:, :, ::-1])

        model = SimpleNamespace(name="ink", meta={})
        frame = np.zeros((24, 32, 3), np.uint8)
        frame[:, 16:] = (10, 200, 30)
        print(snapshot.refine_unavailable(model))
        res = snapshot.take_snapshot(frame, Engine(), model, Path(sys.argv[1]), refine=False)
        print(res.raw_path.name, res.stylized_path.name, res.refined_path)
        try:
            snapshot.take_snapshot(frame, Engine(), model, Path(sys.argv[1]))
        except snapshot.SnapshotError as exc:
            print(exc)
        print("torch" in sys.modules and sys.modules["torch"] is None)
    """)
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=root, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == snapshot.NEEDS_TORCH
    raw_name, stylized_name, refined = lines[1].split()
    assert raw_name.endswith("_ink_raw.png") and stylized_name.endswith("_ink_stylized.png") and refined == "None"
    raw, stylized = read_png(tmp_path / raw_name), read_png(tmp_path / stylized_name)
    assert raw[0, 20].tolist() == [10, 200, 30] and stylized[0, 20].tolist() == [245, 55, 225]  # BGR of the inverted RGB
    assert lines[2] == f"{snapshot.NEEDS_TORCH}; take the snapshot without refinement"
    assert lines[3] == "True"  # nothing imported torch behind the shim's back
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([raw_name, stylized_name])
