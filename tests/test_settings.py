"""Remembered settings: typed round trip, flags win, and a real restart through `nstcam.cli.main`.

Every test here writes to a temporary settings file (QSettings.setPath), never the user's."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings

from nstcam.cli import main, window_parser
from nstcam.live.controls import Look
from nstcam.ui.settings import SavedSettings, fill_from_settings, open_settings


@pytest.fixture
def settings_dir(tmp_path):
    """Point the user-scope INI settings at a fresh folder for this test."""
    folder = tmp_path / "config"
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder))
    return folder


def test_settings_file_is_where_the_test_put_it(settings_dir):
    assert open_settings().fileName().startswith(str(settings_dir))


def test_nstcam_config_dir_moves_the_settings_file(settings_dir, tmp_path, monkeypatch):
    """A measurement (bench_app) or a portable install points the settings elsewhere; the
    platform's file is then neither read nor written."""
    SavedSettings().put("strength", 0.7)
    portable = tmp_path / "portable"
    monkeypatch.setenv("NSTCAM_CONFIG_DIR", str(portable))
    assert SavedSettings().get("strength", float) is None
    SavedSettings().put_all({"strength": 0.3})
    assert (portable / "nstcam.ini").is_file() and SavedSettings().get("strength", float) == 0.3
    monkeypatch.delenv("NSTCAM_CONFIG_DIR")
    assert SavedSettings().get("strength", float) == 0.7


def test_typed_round_trip_and_bad_values_read_as_none(settings_dir):
    saved = SavedSettings()
    saved.put_all({"strength": 0.4, "mirror": True, "size": 200, "style": "moss", "geometry": b"\x01\x02"})
    again = SavedSettings()  # a new object reads the file
    assert again.get("strength", float) == 0.4 and again.get("mirror", bool) is True
    assert again.get("size", int) == 200 and again.get("style", str) == "moss"
    assert again.get("geometry", bytes) == b"\x01\x02"
    again.put("size", "huge")
    assert again.get("size", int) is None and again.get("missing", str) is None
    again.clear()
    assert SavedSettings().get("strength", float) is None


def test_remembered_values_fill_only_flags_not_given(settings_dir):
    SavedSettings().put_all({"strength": 0.4, "preserve_colors": "statistics", "mirror": True, "size": 200,
                             "stabilize": False, "device": "cpu", "precision": "fp32", "crossfade": False,
                             "inbetween": False})
    args = window_parser().parse_args(["--strength", "0.9", "--no-mirror"])
    fill_from_settings(args)
    assert (args.strength, args.mirror) == (0.9, False)  # given on the command line: they win
    assert (args.preserve_colors, args.size, args.stabilize, args.crossfade) == ("statistics", 200, False, False)
    assert (args.device, args.precision, args.inbetween) == ("cpu", "fp32", False)


def test_remembered_values_that_no_longer_fit_are_skipped(settings_dir):
    SavedSettings().put_all({"device": "tpu", "precision": "fp16", "size": 99999, "strength": 3.0,
                             "preserve_colors": "sepia"})
    args = window_parser().parse_args(["--device", "cpu"])
    fill_from_settings(args)
    assert args.device == "cpu" and args.precision is None  # fp16 is not offered on the CPU
    assert args.size is None and args.strength is None and args.preserve_colors is None
    SavedSettings().put_all({"size": 10})  # under the minimum: a cv2.error at every launch, once
    args = window_parser().parse_args([])
    fill_from_settings(args)
    assert args.size is None
    args = window_parser().parse_args([])
    fill_from_settings(args)
    assert args.device is None  # no such device here: auto


def test_a_torch_precision_is_not_carried_to_the_onnxruntime_backend(settings_dir):
    SavedSettings().put_all({"device": "cpu", "precision": "bf16"})
    args = window_parser().parse_args(["--backend", "onnxruntime"])
    fill_from_settings(args)
    assert args.device == "cpu" and args.precision is None  # ONNX Runtime runs fp32


def run_window(monkeypatch, styles_dir, video, *flags: str):
    """Run the real launch path for a moment; returns the window it opened (closed by then)."""
    import nstcam.ui.app as app

    opened = []

    class Recorded(app.MainWindow):
        def __init__(self, *a, **kw) -> None:
            super().__init__(*a, **kw)
            opened.append(self)

    monkeypatch.setattr(app, "MainWindow", Recorded)
    code = main(["--camera", str(video), "--styles-dir", str(styles_dir), "--device", "cpu",
                 "--benchmark-seconds", "0.2", *flags])
    assert code == 0
    return opened[0]


@pytest.mark.slow
def test_settings_survive_a_restart_and_flags_override_them(qapp, settings_dir, monkeypatch, styles_dir, video,
                                                           tmp_path, capsys):
    first = run_window(monkeypatch, styles_dir, video, "--style", "glacier", "--strength", "0.25",
                       "--preserve-colors", "--mirror", "--size", "48", "--no-crossfade", "--record-size", "camera",
                       "--pictures-dir", str(tmp_path / "pics"), "--no-inbetween")
    assert first.controls.look == Look(0.25, "luminance")

    second = run_window(monkeypatch, styles_dir, video)  # no flags: everything as it was left
    assert second.engine.style == "glacier" and second.engine.size == 48
    assert second.controls.look == Look(0.25, "luminance") and not second.controls.fade
    assert second.mirror_action.isChecked() and second.options.record_size == "camera"
    assert not second.inbetween_action.isChecked()  # in-between frames stay off
    assert second.options.pictures_dir == tmp_path / "pics"
    assert second.look.strength.value() == 25 and second.look.colors_action.isChecked()
    assert second.view.frame.shape[:2] == (48, 72)  # the remembered brush size reached the engine

    third = run_window(monkeypatch, styles_dir, video, "--style", "moss", "--strength", "0.9", "--no-mirror",
                       "--preserve-colors", "off")
    assert third.engine.style == "moss" and third.controls.look == Look(0.9, "off")
    assert not third.mirror_action.isChecked()
    assert third.engine.size == 48  # not given: still remembered
    capsys.readouterr()


def test_reset_settings_forgets_and_restores_the_defaults(qtbot, settings_dir, styles_dir, video):
    from nstcam.engines.torch_engine import StyleEngine
    from nstcam.registry import StyleRegistry
    from nstcam.ui.main_window import MainWindow, WindowOptions

    registry = StyleRegistry.discover([styles_dir])
    engine = StyleEngine(registry.select("cpu"), device="cpu", size=64)
    saved = SavedSettings()
    w = MainWindow(engine, registry, WindowOptions(camera=str(video), strength=0.5, colors="statistics",
                                                   mirror=True, thumbnails=False, record_size="camera",
                                                   pictures_dir=settings_dir / "pics", inbetween=False),
                   settings=saved)
    qtbot.addWidget(w)
    w.menus.reset_settings_action.trigger()
    assert w.controls.look == Look() and not w.mirror_action.isChecked() and w.controls.fade
    assert w.inbetween_action.isChecked()
    assert engine.size == 240 and w.options.record_size == "processing" and w.options.pictures_dir is None
    assert SavedSettings().get("strength", float) == 1.0  # the defaults, remembered from now on
    assert SavedSettings().get("device", str) is None
    w.close()


def test_a_snapshot_dock_left_open_comes_back_hidden_with_nothing_to_cancel(qtbot, settings_dir, styles_dir, video):
    from nstcam.engines.torch_engine import StyleEngine
    from nstcam.registry import StyleRegistry
    from nstcam.ui.main_window import MainWindow, WindowOptions
    from nstcam.ui.settings import window_state

    registry = StyleRegistry.discover([styles_dir])

    def window() -> MainWindow:
        engine = StyleEngine(registry.select("cpu"), device="cpu", size=64)
        w = MainWindow(engine, registry, WindowOptions(camera=str(video), thumbnails=False), settings=SavedSettings())
        qtbot.addWidget(w)
        w.show()
        return w

    first = window()
    first.snapshots.dock.show()  # as after a snapshot, left open when the window closed
    SavedSettings().put_all(window_state(first))
    first.close()
    second = window()
    assert not second.snapshots.dock.isVisible()
    assert not second.snapshots.panel.cancel.isEnabled()
    second.close()


@pytest.fixture
def unwritable_settings(tmp_path):
    """A config folder that cannot be written: its place is taken by a file (a read-only folder
    behaves alike, but not for root, who may write anywhere). Restored to a writable one after."""
    blocked = tmp_path / "config"
    blocked.write_text("")
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(blocked))
    yield blocked
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "config-after"))


def test_settings_that_cannot_be_saved_are_said_once(qtbot, unwritable_settings, styles_dir, video):
    from nstcam.engines.torch_engine import StyleEngine
    from nstcam.registry import StyleRegistry
    from nstcam.ui.main_window import MainWindow, WindowOptions

    saved = SavedSettings()
    assert not saved.put_all({"strength": 0.5})
    registry = StyleRegistry.discover([styles_dir])
    engine = StyleEngine(registry.select("cpu"), device="cpu", size=64)
    w = MainWindow(engine, registry, WindowOptions(camera=str(video), thumbnails=False), settings=saved)
    qtbot.addWidget(w)
    w.mirror_action.trigger()  # each change is remembered: written again, fails again
    w.look.step_strength(-1)
    said = [m for _, m in w.status.history if m.startswith("settings not saved: ")]
    assert said == [f"settings not saved: {saved.path} cannot be written; changes last until you quit"]
    assert saved.path.startswith(str(unwritable_settings))
    w.close()
