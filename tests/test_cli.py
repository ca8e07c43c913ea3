"""The `nstcam` command line: errors exit 2 with one message, `styles`, `render`, the window."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import pytest
import torch

from nstcam_fixtures import count_frames, deny_access, make_style, make_styles_dir, make_video, spoil_weights
from nstcam.cli import main, render_parser, styles_parser, window_parser

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("no_user_styles", "temporary_settings")
TEST_STYLES = ("ember", "glacier", "moss")


@pytest.fixture(scope="module")
def no_user_styles():
    """Keep the developer's own user styles folder out of these tests (QStandardPaths test mode:
    AppDataLocation moves to a qttest folder that does not exist). The bundled styles remain."""
    from PySide6.QtCore import QStandardPaths

    QStandardPaths.setTestModeEnabled(True)
    yield
    QStandardPaths.setTestModeEnabled(False)


@pytest.fixture(scope="module")
def temporary_settings(tmp_path_factory):
    """The window's remembered settings go to a temporary folder, never the user's."""
    from PySide6.QtCore import QSettings

    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path_factory.mktemp("settings")))
    yield


@pytest.fixture(scope="module")
def styles_dir(tmp_path_factory) -> Path:
    return make_styles_dir(tmp_path_factory.mktemp("styles"), broken=True)


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("video") / "clip.avi", frames=30, size=(96, 64))


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error(err: str, *needles: str) -> None:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("nstcam") and "error:" in line]
    assert len(errors) == 1, err
    for needle in needles:
        assert needle in errors[0], (needle, err)


# ----------------------------------------------------------------------------- help


def test_every_flag_has_help():
    for parser in (window_parser(), render_parser(), styles_parser()):
        for action in parser._actions:
            if action.option_strings and action.help != "==SUPPRESS==":
                assert action.help, (parser.prog, action.option_strings)


def test_help_exits_zero(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for flag in ("--camera", "--style", "--device", "--size", "--mirror", "--record", "--styles-dir",
                 "--fullscreen", "--pictures-dir", "nstcam render", "nstcam styles"):
        assert flag in out
    assert "--benchmark-seconds" not in out
    code, out, _ = run(capsys, "render", "--help")
    assert code == 0 and "-o OUTPUT" in out


# ----------------------------------------------------------------------------- errors


def test_unknown_style_lists_the_choices(capsys, styles_dir):
    code, _, err = run(capsys, "--style", "nope", "--styles-dir", str(styles_dir), "--camera", "demo")
    assert code == 2
    assert_one_error(err, "unknown style 'nope'", "available styles:", *TEST_STYLES)


def test_render_unknown_style(capsys, styles_dir, video, tmp_path):
    code, _, err = run(capsys, "render", str(video), "-o", str(tmp_path / "o.mp4"), "--style", "nope",
                       "--styles-dir", str(styles_dir))
    assert code == 2
    assert_one_error(err, "unknown style 'nope'", "available styles:", *TEST_STYLES)
    assert not (tmp_path / "o.mp4").exists()


def test_render_needs_a_style(capsys, styles_dir, video, tmp_path):
    code, _, err = run(capsys, "render", str(video), "-o", str(tmp_path / "o.mp4"), "--styles-dir", str(styles_dir))
    assert code == 2
    assert_one_error(err, "--style is required", "available styles:", *TEST_STYLES)


def test_missing_files(capsys, styles_dir, tmp_path):
    missing = tmp_path / "missing.avi"
    code, _, err = run(capsys, "render", str(missing), "-o", str(tmp_path / "o.mp4"), "--style", "ember",
                       "--styles-dir", str(styles_dir))
    assert code == 2
    assert_one_error(err, str(missing), "no such video file")
    code, _, err = run(capsys, "--camera", str(missing), "--styles-dir", str(styles_dir))
    assert code == 2
    assert_one_error(err, str(missing), "does not exist", "demo")
    code, _, err = run(capsys, "styles", "--styles-dir", str(tmp_path / "nowhere"))
    assert code == 2
    assert_one_error(err, "nowhere", "no such folder")


def test_unreadable_video(capsys, styles_dir, tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    code, _, err = run(capsys, "render", str(junk), "-o", str(tmp_path / "o.mp4"), "--style", "ember",
                       "--styles-dir", str(styles_dir))
    assert code == 2
    assert_one_error(err, "junk.mp4")
    code, _, err = run(capsys, "--camera", str(junk), "--styles-dir", str(styles_dir))
    assert code == 2
    assert_one_error(err, "junk.mp4", "could not be opened")


def test_bad_device(capsys, styles_dir):
    code, _, err = run(capsys, "--device", "tpu", "--styles-dir", str(styles_dir))
    assert code == 2
    assert_one_error(err, "tpu", "auto, cuda, cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu(capsys, styles_dir):
    code, _, err = run(capsys, "--device", "cuda", "--camera", "demo", "--styles-dir", str(styles_dir))
    assert code == 2
    assert_one_error(err, "no CUDA device", "--device cpu")


def test_precision_not_offered_on_the_device(capsys, styles_dir):
    code, _, err = run(capsys, "--precision", "fp16", "--device", "cpu", "--camera", "demo",
                       "--styles-dir", str(styles_dir))
    assert code == 2
    assert_one_error(err, "precision fp16 is not offered on cpu", "auto or fp32")


def test_cli_precisions_are_the_engines():
    from nstcam import cli
    from nstcam.engines import torch_engine as engine

    assert cli.PRECISIONS == engine.PRECISIONS


def test_render_at_forced_fp32(capsys, styles_dir, video, tmp_path):
    code, out, err = run(capsys, "render", str(video), "-o", str(tmp_path / "o.mp4"), "--style", "ember",
                         "--precision", "fp32", "--styles-dir", str(styles_dir), "--device", "cpu")
    assert code == 0, err
    assert out.rstrip().endswith("style ember on cpu fp32")


def test_explicit_camera_that_cannot_be_opened(capsys, styles_dir):
    code, _, err = run(capsys, "--camera", "9", "--styles-dir", str(styles_dir))
    assert code == 2
    assert_one_error(err, "camera 9 could not be opened", "demo")


def test_bad_size(capsys, styles_dir):
    code, _, err = run(capsys, "--size", "abc", "--styles-dir", str(styles_dir))
    assert code == 2
    assert_one_error(err, "--size")


# ----------------------------------------------------------------------------- output controls


def test_version_is_the_packages(capsys):
    from importlib.metadata import version

    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"nstcam {version('nstcam')}"


@pytest.mark.parametrize("value", ["1.5", "-0.1", "abc"])
def test_bad_strength(capsys, styles_dir, value):
    code, _, err = run(capsys, "--strength", value, "--styles-dir", str(styles_dir))
    assert code == 2
    assert_one_error(err, "--strength")


def test_control_flags_default_to_not_given():
    """The window's flags must tell "not given" (None) from a value, so remembered settings apply."""
    args = window_parser().parse_args([])
    for name in ("strength", "preserve_colors", "crossfade", "record_size", "mirror", "stabilize", "size",
                 "device", "precision", "style", "pictures_dir"):
        assert getattr(args, name) is None, name
    args = window_parser().parse_args(["--preserve-colors", "--no-mirror", "--no-stabilize", "--strength", "0.3"])
    assert (args.preserve_colors, args.mirror, args.stabilize, args.strength) == ("luminance", False, False, 0.3)
    assert window_parser().parse_args(["--preserve-colors", "statistics"]).preserve_colors == "statistics"
    assert render_parser().parse_args(["in.mp4", "-o", "o.mp4"]).device == "auto"  # render remembers nothing


def test_render_at_strength_zero_is_the_input(capsys, styles_dir, video, tmp_path):
    """The controls run in `render` too: strength 0 writes the input back (up to the codec)."""
    out_path = tmp_path / "s0.avi"
    code, _, err = run(capsys, "render", str(video), "-o", str(out_path), "--style", "ember", "--strength", "0",
                       "--preserve-colors", "--no-stabilize", "--styles-dir", str(styles_dir))
    assert code == 0, err
    source, rendered = cv2.VideoCapture(str(video)), cv2.VideoCapture(str(out_path))
    ok_a, a = source.read()
    ok_b, b = rendered.read()
    source.release()
    rendered.release()
    assert ok_a and ok_b and abs(a.astype(int) - b.astype(int)).mean() < 6  # MJPG twice


# ----------------------------------------------------------------------------- styles


def test_styles_lists_styles_and_broken_files(capsys, styles_dir):
    code, out, err = run(capsys, "styles", "--styles-dir", str(styles_dir))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["NAME", "TITLE", "ARTIST", "VARIANT"]
    for name, title in (("ember", "Ember"), ("glacier", "Glacier"), ("moss", "Moss")):
        row = next(line for line in lines if line.startswith(name + " "))
        assert title in row and "Test Painter" in row and "light" in row and f"{name}.pt" in row
    assert "1 file(s) failed to load" in out
    broken = next(line for line in lines if "broken.pt" in line)
    assert str(styles_dir / "broken.pt") in broken
    assert "Traceback" not in err


# ----------------------------------------------------------------------------- render


def video_fps(path: Path) -> float:
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return fps


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_render_keeps_frame_count_size_and_fps(capsys, styles_dir, video, tmp_path, suffix):
    out_path = tmp_path / f"out{suffix}"
    code, out, err = run(capsys, "render", str(video), "-o", str(out_path), "--style", "glacier",
                         "--styles-dir", str(styles_dir), "--device", "cpu")
    assert code == 0, err
    assert "30 frames" in out and "96x64" in out
    assert count_frames(out_path) == (30, (96, 64))
    assert video_fps(out_path) == pytest.approx(30.0, rel=0.01)
    assert "30/30" in err  # the tqdm progress bar
    # the output is stylized, not a copy
    a = cv2.VideoCapture(str(video)).read()[1].astype(int)
    b = cv2.VideoCapture(str(out_path)).read()[1].astype(int)
    assert abs(a - b).mean() > 10


def test_render_at_a_processing_size(capsys, styles_dir, video, tmp_path):
    out_path = tmp_path / "small.mp4"
    code, out, err = run(capsys, "render", str(video), "-o", str(out_path), "--style", "ember",
                         "--size", "32", "--styles-dir", str(styles_dir))
    assert code == 0, err
    assert count_frames(out_path) == (30, (48, 32))


# ----------------------------------------------------------------------------- window


@pytest.mark.slow
def test_window_from_the_command_line(qapp, capsys, styles_dir, video, tmp_path):
    """The real launch path: arguments -> engine -> window -> benchmark -> screenshot -> exit 0."""
    shot = tmp_path / "shot.png"
    code = main(["--camera", str(video), "--style", "moss", "--size", "64", "--styles-dir", str(styles_dir),
                 "--pictures-dir", str(tmp_path / "pics"), "--benchmark-seconds", "0.5",
                 "--screenshot", str(shot)])
    out, err = capsys.readouterr()
    assert code == 0, err
    line = next(line for line in out.splitlines() if line.startswith("BENCHMARK_JSON "))
    figures = json.loads(line.split(" ", 1)[1])
    assert figures["display_fps"] > 0 and figures["size"] == 64 and figures["frame"] == "96x64"
    assert figures["latency_ms_mean"] > 0 and figures["fresh_latency_ms"] > 0
    assert cv2.imread(str(shot)) is not None


@pytest.mark.slow
def test_no_qt_widgets_for_styles_render_and_errors(styles_dir, video, tmp_path):
    """`styles`, `render` and the error paths must not import QtWidgets/QtGui (headless use)."""
    script = textwrap.dedent(f"""
        import sys
        from nstcam.cli import main
        codes = [
            main(["styles", "--styles-dir", {str(styles_dir)!r}]),
            main(["--style", "nope", "--styles-dir", {str(styles_dir)!r}]),
            main(["render", {str(video)!r}, "-o", {str(tmp_path / "r.mp4")!r}, "--style", "ember",
                  "--size", "32", "--styles-dir", {str(styles_dir)!r}]),
        ]
        gui = sorted(m for m in sys.modules if m in ("PySide6.QtWidgets", "PySide6.QtGui"))
        print("RESULT", codes, gui)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=isolated_env(tmp_path))
    assert "RESULT [0, 2, 0] []" in proc.stdout, proc.stdout + proc.stderr


def isolated_env(tmp_path: Path) -> dict[str, str]:
    """The environment for a child process, with its user data folders in `tmp_path`."""
    return {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg-data"), "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
            "QT_QPA_PLATFORM": "offscreen"}


@pytest.mark.slow
def test_python_dash_m(styles_dir, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "nstcam", "--style", "nope", "--styles-dir", str(styles_dir)],
                          cwd=REPO, capture_output=True, text=True, timeout=300, env=isolated_env(tmp_path))
    assert proc.returncode == 2
    assert_one_error(proc.stderr, "unknown style 'nope'")


def test_an_absurd_processing_size_is_refused_before_anything_starts(capsys, styles_dir):
    code, _, err = run(capsys, "--size", "100000", "--styles-dir", str(styles_dir), "--camera", "demo")
    assert code == 2 and "--size 100000: too large" in err and "at most 2160" in err
    assert "Traceback" not in err


def test_a_style_falling_back_from_a_broken_file_is_warned_about(capsys, styles_dir, video, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "ember-light.pt").write_bytes(b"truncated")
    out = tmp_path / "o.mp4"
    code, _, err = run(capsys, "render", str(video), "-o", str(out), "--style", "ember", "--size", "32",
                       "--styles-dir", str(styles_dir), "--styles-dir", str(mine), "--no-stabilize")
    assert code == 0 and out.is_file()
    assert "warning" in err and str(mine / "ember-light.pt") in err and "instead" in err


def test_a_style_with_nan_weights_is_listed_as_broken_and_render_refuses_it(capsys, video, tmp_path):
    folder = tmp_path / "diverged"
    folder.mkdir()
    spoiled = spoil_weights(make_style(folder / "scorched.pt", "scorched"), float("nan"))
    reason = f"{spoiled}: weights contain NaN/Inf; retrain or restore it"
    code, out, _ = run(capsys, "styles", "--styles-dir", str(folder))
    assert code == 0 and f"failed to load:\n  {reason}\n" in out
    assert not any(line.startswith("scorched ") for line in out.splitlines())
    code, _, err = run(capsys, "render", str(video), "-o", str(tmp_path / "o.mp4"), "--style", "scorched",
                       "--styles-dir", str(folder))
    assert code == 2 and not (tmp_path / "o.mp4").exists()
    assert_one_error(err, f"style 'scorched': {reason}")


def test_an_unreadable_style_file_is_called_unreadable_with_its_path_once(capsys, tmp_path, monkeypatch):
    folder = make_styles_dir(tmp_path / "styles", names=("ember",))
    locked = make_style(folder / "locked.pt", "locked")
    deny_access(monkeypatch, locked)
    code, out, err = run(capsys, "styles", "--styles-dir", str(folder))
    assert code == 0 and "Traceback" not in err
    [line] = [line for line in out.splitlines() if "locked.pt" in line]
    assert line == f"  {locked}: unreadable style file (Permission denied); check its permissions"
    assert any(line.startswith("ember ") for line in out.splitlines())


def test_an_unreadable_styles_folder_is_one_line_and_the_others_are_listed(capsys, tmp_path, monkeypatch):
    locked = make_styles_dir(tmp_path / "locked", names=("kiwi",))
    folder = make_styles_dir(tmp_path / "styles", names=("ember",))
    deny_access(monkeypatch, locked)
    code, out, err = run(capsys, "styles", "--styles-dir", str(locked), "--styles-dir", str(folder))
    assert code == 0 and "Traceback" not in err
    assert [line for line in out.splitlines() if "locked" in line] == [
        f"  {locked}: unreadable styles folder (Permission denied); check its permissions"]
    assert any(line.startswith("ember ") for line in out.splitlines())


def test_a_style_declared_by_several_files_is_one_row_and_said_once(capsys, tmp_path):
    folder = make_styles_dir(tmp_path / "styles", names=("ember",))
    for i in range(3):
        shutil.copy(folder / "ember.pt", folder / f"copy{i}.pt")
    code, out, _ = run(capsys, "styles", "--styles-dir", str(folder))
    assert code == 0
    [row] = [line for line in out.splitlines() if line.startswith("ember ")]
    assert row.endswith(str(folder / "ember.pt"))
    assert [line for line in out.splitlines() if "files declare the style" in line] == [
        f"  4 files declare the style 'ember' (light); using {folder / 'ember.pt'}"]


def test_missing_window_libraries_are_one_line_and_exit_2_before_qt(capsys, styles_dir, monkeypatch):
    import nstcam.qtcheck

    line = ("the Qt window cannot start: libxcb-icccm.so.4, libxcb-keysyms.so.1 are missing; install them "
            "with: sudo apt install libxcb-icccm4 libxcb-keysyms1")
    monkeypatch.setattr(nstcam.qtcheck, "startup_message", lambda environ=None: line)
    code, _, err = run(capsys, "--styles-dir", str(styles_dir), "--camera", "demo")
    assert code == 2 and err.strip() == f"nstcam: error: {line}"


def test_doctor_is_a_subcommand(capsys):
    code, out, _ = run(capsys, "doctor", "--cameras", "0")
    assert code == 0 and "styles" in out and "nstcam can run here" in out


@pytest.mark.parametrize("value", ["1e309", "inf", "nan"])
def test_a_strength_that_is_not_a_finite_number_is_refused_as_such(capsys, styles_dir, value):
    code, _, err = run(capsys, "render", "in.mp4", "-o", "o.mp4", "--strength", value)
    assert code == 2
    assert_one_error(err, "--strength", f"must be a finite number between 0 and 1, got {value}")


@pytest.mark.parametrize("command", [[], ["render", "in.mp4", "-o", "o.mp4"]])
def test_threads_beyond_four_per_core_are_refused(capsys, command, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    code, _, err = run(capsys, *command, "--threads", "100000")
    assert code == 2
    assert_one_error(err, "--threads", "at most 8 on this machine (4 per CPU core), got 100000")
    assert window_parser().parse_args(["--threads", "8"]).threads == 8


@pytest.mark.parametrize("command", [[], ["render", "in.mp4", "-o", "o.mp4", "--style", "ember"]])
def test_a_processing_size_under_the_minimum_is_refused(capsys, styles_dir, command):
    code, _, err = run(capsys, *command, "--size", "8", "--styles-dir", str(styles_dir))
    assert code == 2
    assert_one_error(err, "--size 8: too small", "at least 32")


@pytest.mark.slow
def test_a_file_name_that_is_not_utf8_opens_as_render_input_and_as_camera(styles_dir, video, tmp_path):
    """OpenCV used to segfault (rc 139) on such a name, in `render` and in `--camera`'s probe."""
    bad = tmp_path / os.fsdecode(b"bad\xffname.avi")
    bad.write_bytes(video.read_bytes())
    env = isolated_env(tmp_path)
    probe = "import sys; from nstcam.live.sources import open_source; s = open_source(sys.argv[1]); " \
            "print(s.read().shape, s.description); s.release()"
    proc = subprocess.run([sys.executable, "-c", probe, os.fsencode(bad)], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "(64, 96, 3) video bad\ufffdname.avi"
    out = tmp_path / "out.mp4"
    proc = subprocess.run([sys.executable, "-m", "nstcam", "render", os.fsencode(bad), "-o", str(out), "--style",
                           "ember", "--size", "32", "--styles-dir", str(styles_dir), "--threads", "1"],
                          cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert count_frames(out)[0] == 30
