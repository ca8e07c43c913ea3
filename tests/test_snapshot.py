"""nstcam.snapshot: full-resolution stylize + Gatys refinement, three PNGs, cancel, budget."""
from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from app_fixtures import make_style, make_styles_dir, pattern_image
from nstcam import snapshot
from nstcam.engine import StyleEngine
from nstcam.registry import StyleRegistry
from test_faults_disk import fill, small_disk  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread_module")


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
    # the refined image really differs from the fast network's output
    diff = np.abs(read_png(res.refined_path).astype(int) - read_png(res.stylized_path).astype(int)).mean()
    assert diff > 0.5


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
    assert read_png(res.refined_path).shape == (120, 160, 3)
    assert res.style_loss_after < res.style_loss_before


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
    assert res.refine_size == (640, 360)
    assert res.steps_done == snapshot.DEFAULT_STEPS or res.out_of_time
    assert res.style_loss_after < res.style_loss_before
    assert read_png(res.refined_path).shape == (720, 1280, 3)
    assert res.seconds < 60, res


def test_refinement_uses_the_layers_the_targets_cover(registry):
    """A style trained on fewer layers than the net's defaults (no stage5 Gram) still refines;
    weights are the net's Gatys defaults with the gentler refinement style weight."""
    from trainer.lossnets import DEFAULT_WEIGHTS

    net = snapshot.get_loss_net()
    model = registry.choose("ember", "cpu").model
    defaults = DEFAULT_WEIGHTS[net.name]
    trimmed = type(model)(model.config, model.state_dict, {"name": "x"},
                          {net.name: {k: v for k, v in model.style_targets[net.name].items() if k != "stage5"}})
    settings = snapshot._loss_settings(trimmed, net, defaults)
    assert set(settings["style_layers"]) == set(net.style_weights) - {"stage5"}
    assert settings["style_weight"] == pytest.approx(defaults.style * snapshot.REFINE_STYLE_SCALE)
    assert settings["content_weight"] == defaults.content and settings["tv_weight"] == defaults.tv
    meta = {"name": "x", "loss_net": net.name, "style_layers": {"stem": 1.0, "stage2": 0.5}, "content_layer": "stage2",
            "style_weight": 25.0}
    trained = type(model)(model.config, model.state_dict, meta, model.style_targets)
    settings = snapshot._loss_settings(trained, net, defaults)
    assert settings["style_layers"] == {"stem": 1.0, "stage2": 0.5} and settings["content_layer"] == "stage2"
    assert settings["style_weight"] == pytest.approx(defaults.style * snapshot.REFINE_STYLE_SCALE)


def test_a_full_disk_leaves_no_truncated_png_and_no_placeholder(registry, engine, small_disk):
    fill(small_disk)
    with pytest.raises(snapshot.SnapshotError) as info:
        snapshot.take_snapshot(camera_frame(), engine, registry.choose("ember", "cpu").model, small_disk,
                               refine=False, style="ember")
    message = str(info.value)
    assert message.startswith(f"could not write {small_disk}/") and "_raw.png (No space left on device)" in message
    assert message.endswith("; nothing was saved")
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


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
