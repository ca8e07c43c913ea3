"""In the window: a picture dropped, pasted or chosen becomes a live style; Remove; Train a
dedicated style… (offscreen, qtbot)."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QUrl
from PySide6.QtGui import QGuiApplication, QImage
from PySide6.QtWidgets import QFileDialog

from nstcam_fixtures import pattern_image
from nstcam.engines import instant_onnx
from nstcam.engines.instant import load_instant
from nstcam.engines.onnx_export import ensure_onnx
from nstcam.engines.ort import OnnxStyleEngine
from nstcam.engines.torch_engine import StyleEngine
from nstcam.jobs.instant_style import read_picture
from nstcam.host.userdirs import user_styles_dir
from nstcam.registry import StyleRegistry
from nstcam.ui.drop_timing import drop_mime, time_drop
from nstcam.ui.instant_styles import pasted_dir
from nstcam.ui.main_window import MainWindow, WindowOptions

WAIT = 60_000  # ms: two shared cores



def open_on(qtbot, engine, registry, video: Path, tmp_path: Path) -> MainWindow:
    """A started window over `engine`, showing frames."""
    w = MainWindow(engine, registry, WindowOptions(camera=str(video), device_type="cpu", thumbnails=False,
                                                    pictures_dir=tmp_path / "pictures", retry_seconds=0.2))
    qtbot.addWidget(w)
    w.show()
    w.start()
    qtbot.waitUntil(lambda: w.view.frames_shown >= 1, timeout=WAIT)
    return w


@pytest.fixture
def window(qtbot, styles_dir, video, tmp_path, monkeypatch) -> MainWindow:  # noqa: F811
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    registry = StyleRegistry.discover([styles_dir])
    w = open_on(qtbot, StyleEngine(registry.select("cpu"), device="cpu", size=64), registry, video, tmp_path)
    yield w
    w.close()


@pytest.fixture
def onnx_window(qtbot, styles_dir, video, tmp_path, monkeypatch) -> MainWindow:  # noqa: F811
    """The window as the lite bundle runs it: ONNX Runtime over the styles' exports."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    for style in styles_dir.glob("*.pt"):
        ensure_onnx(style)
    registry = StyleRegistry.discover([styles_dir], runtime="onnx")
    w = open_on(qtbot, OnnxStyleEngine(registry.select("cpu"), device="cpu", size=64), registry, video, tmp_path)
    yield w
    w.close()


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    path = tmp_path / "Sunset Poster.png"
    Image.fromarray(pattern_image(96, seed=5)).save(path)
    return path


def first_frame_of(qtbot, window: MainWindow, name: str) -> float:
    """Wait for a stylized frame of style `name` on screen; seconds since the request."""
    shown: list[float] = []
    window.frameShown.connect(lambda r: shown.append(time.monotonic()) if r.style == name else None)
    qtbot.waitUntil(lambda: bool(shown), timeout=WAIT)
    return shown[0] - window.instant.requested_at


def test_a_dropped_picture_becomes_the_live_style(qtbot, window: MainWindow, picture: Path) -> None:
    said: list[str] = []  # every status line: a later one (the looping video's) may replace it
    window.ctx.statusMessage.connect(lambda text, error: said.append(text))
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(picture))])
    assert drop_mime(window, mime)
    seconds = first_frame_of(qtbot, window, "sunset_poster")
    assert seconds > 0
    assert window.engine.style == "sunset_poster" and "sunset_poster" in window.gallery.names
    assert window.registry.choose("sunset_poster", "cpu").variant == "instant"
    assert (user_styles_dir() / "sunset_poster.instant").is_file()  # remembered across launches
    qtbot.waitUntil(lambda: any("sunset_poster" in text for text in said), timeout=WAIT)


def test_drop_timing_measures_a_drop_to_the_new_styles_first_frame(window: MainWindow, picture: Path,
                                                                    tmp_path: Path) -> None:
    """nstcam.ui.drop_timing (the issue's 1.5 s figure): a time for the picture's own style, which
    is live afterwards; a picture that makes no style times out instead of timing another one."""
    seconds = time_drop(window, picture, timeout=WAIT / 1000)
    assert 0 < seconds < WAIT / 1000
    assert window.engine.style == "sunset_poster"
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    with pytest.raises(TimeoutError):
        time_drop(window, notes, timeout=1.0)


def test_a_pasted_image_becomes_the_live_style(qtbot, window: MainWindow) -> None:
    rgb = np.ascontiguousarray(pattern_image(80, seed=7))
    image = QImage(rgb.data, 80, 80, 240, QImage.Format.Format_RGB888).copy()
    QGuiApplication.clipboard().setImage(image)
    window.instant.paste_action.trigger()
    qtbot.waitUntil(lambda: window.engine.style.startswith("pasted"), timeout=WAIT)
    first_frame_of(qtbot, window, window.engine.style)
    kept = list(pasted_dir().glob("pasted-*.png"))
    assert len(kept) == 1  # the pasted image, kept to train a dedicated style from
    assert window.registry.choose(window.engine.style, "cpu").model.meta["source"] == str(kept[0].resolve())


def test_style_from_picture_menu_entry(qtbot, window: MainWindow, picture: Path, monkeypatch) -> None:
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(picture), ""))
    assert window.instant.from_picture_action in window.menuBar().actions()[0].menu().actions()
    window.instant.from_picture_action.trigger()
    first_frame_of(qtbot, window, "sunset_poster")


def test_a_dropped_bad_picture_says_why_and_adds_nothing(qtbot, window: MainWindow, tmp_path: Path) -> None:
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    before = window.gallery.names
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(bad))])
    drop_mime(window, mime)
    qtbot.waitUntil(lambda: "notes.png: not a picture" in window.status.message, timeout=WAIT)
    assert window.gallery.names == before
    assert not user_styles_dir().exists() or list(user_styles_dir().iterdir()) == []


def test_drag_of_something_else_is_not_accepted(window: MainWindow) -> None:
    mime = QMimeData()
    mime.setText("just words")
    assert not window.instant.accepts(mime)
    assert not drop_mime(window, mime)


def test_remove_and_train_a_dedicated_style(qtbot, window: MainWindow, picture: Path) -> None:
    window.instant.from_file(picture)
    first_frame_of(qtbot, window, "sunset_poster")
    assert window.instant.menu_for("ember") is None  # trained styles have no such menu
    menu = window.instant.menu_for("sunset_poster")
    texts = {a.text(): a for a in menu.actions()}
    assert not texts["Remove"].isEnabled()  # the style in use
    window.instant.remove("sunset_poster")
    assert "choose another one" in window.status.message and "sunset_poster" in window.gallery.names

    texts["Train a dedicated style…"].trigger()
    dialog = window.menus.new_style_dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.painting_edit.text() == str(picture.resolve())
    dialog.close()

    window.select_style("ember")
    window.instant.menu_for("sunset_poster").actions()[1].trigger()  # Remove
    assert "sunset_poster" not in window.gallery.names and "sunset_poster" not in window.engine.style_names
    assert "sunset_poster" not in window.registry.names()
    assert list(user_styles_dir().iterdir()) == []
    assert window.gallery.names == ["ember", "glacier", "moss"]
    # the picture again: a fresh style of the same name, back in the gallery
    window.instant.from_file(picture)
    first_frame_of(qtbot, window, "sunset_poster")


def test_a_snapshot_of_an_instant_style_is_saved_unrefined(qtbot, window: MainWindow, picture: Path) -> None:
    window.instant.from_file(picture)
    first_frame_of(qtbot, window, "sunset_poster")
    with qtbot.waitSignal(window.snapshotFinished, timeout=WAIT * 2) as blocker:
        window.snapshots.action.trigger()
    res = blocker.args[0]
    assert res.refined_path is None and res.raw_path.is_file() and res.stylized_path.is_file()
    assert "no efficientnet-lite0 Gram targets" in window.snapshots.panel.where.text()


def drop_file(window: MainWindow, path: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    assert drop_mime(window, mime)


def test_a_picture_dropped_on_the_onnx_runtime_window_becomes_the_live_style(qtbot, onnx_window: MainWindow,
                                                                              picture: Path) -> None:
    """The lite bundle's window: the picture encoded on ONNX Runtime (its code is that encoder's,
    bit for bit) and run on MicroAST's frame graph beside the trained styles' exports."""
    said: list[str] = []  # every status line: a later one (a thread-count notice) may replace it
    onnx_window.ctx.statusMessage.connect(lambda text, error: said.append(text))
    drop_file(onnx_window, picture)
    first_frame_of(qtbot, onnx_window, "sunset_poster")
    assert onnx_window.engine.style == "sunset_poster" and "sunset_poster" in onnx_window.gallery.names
    made = load_instant(user_styles_dir() / "sunset_poster.instant")
    np.testing.assert_array_equal(made.code, instant_onnx.encode_style(read_picture(picture)).rows)
    qtbot.waitUntil(lambda: any("style sunset_poster from" in text for text in said), timeout=WAIT)


def test_a_drop_that_cannot_become_a_style_is_one_status_line_not_a_traceback(
        qtbot, onnx_window: MainWindow, picture: Path, without_microast_graphs, caplog) -> None:
    """A bundle without MicroAST's graphs and without torch (it used to raise RuntimeError, logged
    with a traceback): the status line says why, the log holds no traceback, nothing is added."""
    before = onnx_window.gallery.names
    drop_file(onnx_window, picture)
    qtbot.waitUntil(lambda: "no ONNX export of MicroAST" in onnx_window.status.message, timeout=WAIT)
    assert "\n" not in onnx_window.status.message
    assert not [r for r in caplog.records if r.exc_info]
    assert onnx_window.gallery.names == before and onnx_window.engine.style_names == before
    assert not user_styles_dir().exists() or list(user_styles_dir().iterdir()) == []


def test_picking_a_style_whose_export_is_still_to_be_made_says_so(qtbot, styles_dir, video, tmp_path,  # noqa: F811
                                                                   monkeypatch):
    """A launch without torch exports a style on its first frame: the seconds it takes are said."""
    import shutil

    from nstcam.engines.ort import LateExport

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    for style in styles_dir.glob("*.pt"):
        ensure_onnx(style)
    registry = StyleRegistry.discover([styles_dir], runtime="onnx")
    models = registry.select("cpu")
    first, later = list(models)[:2]
    release, exported = threading.Event(), models[later].path

    def make() -> Path:
        release.wait(30)  # the export's seconds, until the test has looked
        return shutil.copy(exported, tmp_path / "later.onnx")

    models[later] = LateExport(later, tmp_path / "later.onnx", make=make)
    w = open_on(qtbot, OnnxStyleEngine(models, device="cpu", size=64), registry, video, tmp_path)
    try:
        w.select_style(later)
        assert "exporting it, a few seconds" in w.status.message
        release.set()
        qtbot.waitUntil(lambda: w.ctx.last_result is not None and w.ctx.last_result.style == later, timeout=WAIT)
        w.select_style(first)
        assert "exporting" not in w.status.message
        w.select_style(later)
        assert "exporting" not in w.status.message  # made once
    finally:
        release.set()
        w.close()
