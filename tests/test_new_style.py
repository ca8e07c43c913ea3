"""New style from the app: the generated photo set, the training process (progress, cancel, the
style published only when finished), the engine and registry taking a style at run time, and the
window's File -> New style… end to end with a tiny training.

A tiny training (32 px crops, a width-8 network, a few steps) takes ~20 s here, most of it the
child process importing torch and building the loss net.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nstcam_fixtures import make_style, make_styles_dir, make_video
from nstcam.engines.torch_engine import StyleEngine
from nstcam.registry import StyleRegistry
from nstcam.jobs.scene_photos import ensure_scene_photos, scene_photo
from nstcam.jobs.training import TrainingJob, unique_style_name
from nstcam.ui.main_window import MainWindow, WindowOptions
from nstcam.ui.new_style import format_eta

WAIT = 240_000  # ms: a tiny training's process start and loss net on a busy 2-core machine
TINY = ["--image-size", "32", "--width", "8", "--res-blocks", "1", "--batch-size", "2", "--workers", "0",
        "--loss-net", "efficientnet-lite0", "--threads", "1", "--log-every", "1", "--sample-every", "1"]
ENDLESS = [*TINY, "--steps", "100000"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return ensure_scene_photos(tmp_path_factory.mktemp("photos"), count=6)


@pytest.fixture
def user_styles(tmp_path, monkeypatch):
    """The user's styles folder (nstcam.host.userdirs) in a temporary app-data folder."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setattr("sys.platform", "linux")
    from nstcam.host.userdirs import user_styles_dir

    return user_styles_dir()


def test_scene_photos_are_deterministic_varied_and_usable(photos):
    from trainer.dataset import scan_images

    assert np.array_equal(scene_photo(3), scene_photo(3))
    means = [scene_photo(i).mean(axis=(0, 1)) for i in range(4)]
    assert min(np.abs(a - b).sum() for i, a in enumerate(means) for b in means[i + 1:]) > 3  # not one image
    assert all(min(scene_photo(i).shape[:2]) == 256 for i in range(4))
    assert len(scan_images(photos).paths) == 6


def test_style_names_from_paintings_are_free_and_safe(tmp_path):
    (tmp_path / "bal_du_moulin.pt").write_bytes(b"")
    assert unique_style_name("Bal du Moulin!", ["monet"], tmp_path) == "bal_du_moulin_2"
    assert unique_style_name("Monet", ["monet", "monet_2"], tmp_path) == "monet_3"
    assert unique_style_name("???", [], tmp_path) == "style"


def test_eta_text():
    assert format_eta(None) == "" and format_eta(42.4) == "about 42 s left"
    assert format_eta(200) == "about 3 min 20 s left"


def test_engine_and_registry_take_a_style_while_running(tmp_path):
    folder = make_styles_dir(tmp_path / "styles", names=("ember", "glacier"))
    registry = StyleRegistry.discover([folder])
    engine = StyleEngine(registry.select("cpu"), device="cpu", size=32)
    frame = np.random.default_rng(0).integers(0, 255, (48, 64, 3), np.uint8)
    engine.stylize(frame)
    new = make_style(tmp_path / "user" / "moss.pt", "moss", seed=5)
    from trainer.stylefile import load_style

    model = load_style(new)
    engine.add_style("moss", model)
    entry = registry.add(new, model)
    assert engine.style_names == ["ember", "glacier", "moss"] and "moss" in registry.names()
    assert entry.path == new and registry.choose("moss", "cpu").model is model
    out = engine.stylize(frame, style="moss")
    assert not np.array_equal(out, engine.stylize(frame, style="ember"))  # its own network runs


@pytest.mark.slow
def test_cancelled_training_leaves_no_style_file(photos, user_styles, tmp_path):
    job = TrainingJob(photos / "scene_001.png", photos, user_styles, "cancelme", ENDLESS, threads=1)
    job.start()
    while job.progress().step < 2:
        assert not job.poll(1.0), f"the training ended early: {job.error}"
    assert job.progress().total == 100000
    assert job.cancel() and job.poll()
    assert job.cancelled and job.result is None and job.error is None
    assert not job.workdir.exists()  # checkpoint and samples gone with it
    assert not user_styles.exists() or not list(user_styles.iterdir())


@pytest.mark.slow
def test_failed_training_says_why(photos, user_styles, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    job = TrainingJob(photos / "scene_001.png", empty, user_styles, "nophotos", TINY, threads=1)
    job.start()
    while not job.poll(1.0):
        pass
    assert job.result is None and not job.cancelled
    assert f"dataset folder {empty} holds no image files" in str(job.error)  # trainer.fast's own words
    assert not user_styles.exists() or not list(user_styles.iterdir())


# ---------------------------------------------------------------------------- the window


@pytest.fixture
def window(qtbot, tmp_path, user_styles):
    folder = make_styles_dir(tmp_path / "styles", names=("ember", "glacier"))
    registry = StyleRegistry.discover([folder])
    engine = StyleEngine(registry.select("cpu"), device="cpu", size=48)
    video = make_video(tmp_path / "clip.avi", frames=30, size=(96, 64))
    w = MainWindow(engine, registry, WindowOptions(camera=str(video), pictures_dir=tmp_path / "pictures",
                                                   videos_dir=tmp_path / "videos", device_type="cpu"))
    qtbot.addWidget(w)
    w.show()
    w.start()
    yield w
    w.close()


def _dialog(window, photos, trainer_args):
    window.menus.new_style_action.trigger()
    dialog = window.menus.new_style_dialog
    dialog.trainer_args = trainer_args
    dialog.painting_edit.setText(str(photos / "scene_003.png"))
    dialog.set_photos(photos)
    return dialog


@pytest.mark.slow
def test_window_trains_a_new_style_into_the_gallery(qtbot, window, photos, user_styles):
    dialog = _dialog(window, photos, [*TINY, "--steps", "3", "--workers", "1"])  # DataLoader processes too
    assert dialog.start()
    qtbot.waitUntil(lambda: not dialog.running, timeout=WAIT)
    assert dialog.result_path == user_styles / "scene_003.pt", dialog.status_label.text()
    assert "scene_003" in window.gallery.names and window.engine.style == "scene_003"
    assert window.registry.choose("scene_003", "cpu").path == dialog.result_path
    assert dialog.preview.pixmap() is not None and not dialog.preview.pixmap().isNull()
    shown = window.view.frames_shown
    qtbot.waitUntil(lambda: window.view.frames_shown > shown + 2, timeout=WAIT)  # live, with the new style
    qtbot.waitUntil(lambda: window.gallery.has_thumbnail("scene_003"), timeout=WAIT)


@pytest.mark.slow
def test_window_training_can_be_cancelled_and_saves_nothing(qtbot, window, photos, user_styles):
    dialog = _dialog(window, photos, ENDLESS)
    assert dialog.start()
    qtbot.waitUntil(lambda: dialog.bar.maximum() == 100000 and dialog.bar.value() >= 2, timeout=WAIT)
    shown = window.view.frames_shown
    qtbot.waitUntil(lambda: window.view.frames_shown > shown + 2, timeout=WAIT)  # the live view runs meanwhile
    dialog.cancel_button.click()
    qtbot.waitUntil(lambda: not dialog.running, timeout=WAIT)
    assert dialog.status_label.text().startswith("Cancelled") and dialog.result_path is None
    assert not user_styles.exists() or not list(user_styles.iterdir())
    assert window.gallery.names == ["ember", "glacier"]


def test_window_refuses_an_unreadable_painting(qtbot, window, tmp_path):
    window.menus.new_style_action.trigger()
    dialog = window.menus.new_style_dialog
    bad = tmp_path / "painting.jpg"
    bad.write_bytes(b"not an image")
    dialog.painting_edit.setText(str(bad))
    assert not dialog.start() and not dialog.running
    assert "cannot be used" in dialog.status_label.text()


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="watches /proc")
def test_a_training_whose_app_is_killed_stops_and_removes_its_folder(photos, tmp_path):
    """kill -9 of the app: the child sees its pipe close, stops after the step, cleans up."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from nstcam.jobs.training import TrainingJob\n"
        "if __name__ == '__main__':\n"
        f"    job = TrainingJob(Path({str(photos / 'scene_001.png')!r}), Path({str(photos)!r}),\n"
        f"                      Path({str(tmp_path / 'styles')!r}), 'orphan', {ENDLESS!r}, threads=1)\n"
        "    job.start()\n"
        "    while job.progress().step < 2:\n"
        "        assert not job.poll(1.0)\n"
        "    print(job.workdir, job._process.pid, flush=True)\n"
        "    time.sleep(600)\n"
    )
    app = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        workdir, pid = app.stdout.readline().split()
        assert Path(workdir).is_dir()
    finally:
        app.send_signal(signal.SIGKILL)
        app.wait(60)
    deadline = time.monotonic() + 120
    while Path(workdir).exists() or Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline, "the orphaned training ran on"
        time.sleep(0.5)  # another process: nothing to await but its exit
    assert not (tmp_path / "styles").exists()


def test_an_install_without_torch_is_told_what_training_needs(qtbot, window, photos, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    dialog = _dialog(window, photos, TINY)
    assert not dialog.start() and not dialog.running
    assert "needs torch" in dialog.status_label.text()
