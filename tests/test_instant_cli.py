"""`--style PICTURE` on the command line, `nstcam styles` with instant styles, `styles --remove`."""
from __future__ import annotations

from pathlib import Path

import cv2
import pytest
from PIL import Image

from nstcam_fixtures import count_frames, make_video, pattern_image
from nstcam.cli import main
from nstcam.host.userdirs import user_styles_dir
from nstcam.launch import check_style, load_registry



@pytest.fixture(autouse=True)
def user_data(tmp_path: Path, monkeypatch) -> Path:
    """The user styles folder (where instant styles go) inside the test's folder."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return user_styles_dir()


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    path = tmp_path / "Blue Poster.png"
    Image.fromarray(pattern_image(64, seed=3)).save(path)
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_render_with_a_picture_as_the_style(capsys, picture: Path, user_data: Path, tmp_path: Path) -> None:
    video = make_video(tmp_path / "clip.avi", frames=4, size=(64, 48))
    out = tmp_path / "out.avi"
    code, stdout, err = run(capsys, "render", str(video), "-o", str(out), "--style", str(picture), "--device", "cpu")
    assert code == 0, err
    assert "style blue_poster" in stdout
    assert count_frames(out) == (4, (64, 48))
    a = cv2.VideoCapture(str(video)).read()[1].astype(int)
    b = cv2.VideoCapture(str(out)).read()[1].astype(int)
    assert abs(a - b).mean() > 10  # stylized
    assert [p.name for p in user_data.iterdir()] == ["blue_poster.instant"]
    # made once: the same picture again uses the style already there
    code, _, err = run(capsys, "render", str(video), "-o", str(tmp_path / "again.avi"), "--style", str(picture))
    assert code == 0, err
    assert [p.name for p in user_data.iterdir()] == ["blue_poster.instant"]


def test_a_bad_picture_is_one_error_line_and_writes_nothing(capsys, user_data: Path, tmp_path: Path) -> None:
    video = make_video(tmp_path / "clip.avi", frames=2, size=(64, 48))
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    code, _, err = run(capsys, "render", str(video), "-o", str(tmp_path / "o.avi"), "--style", str(bad))
    assert code == 2 and "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert errors == [f"nstcam: error: --style notes.png: not a picture nstcam can read "
                      f"({errors[0].split('(', 1)[1]}"]
    assert not user_data.exists() or list(user_data.iterdir()) == []
    assert not (tmp_path / "o.avi").exists()


def test_the_window_takes_a_picture_as_its_style(picture: Path, user_data: Path) -> None:
    """The window's launch (prepare_window) checks --style with check_style: a picture becomes
    a style of the registry the window's gallery shows."""
    registry, dirs = load_registry([])
    name = check_style(registry, str(picture), dirs)
    assert name == "blue_poster" and name in registry.names()
    assert registry.choose(name, "cpu").variant == "instant"


def test_styles_lists_instant_styles_and_removes_them(capsys, picture: Path, user_data: Path) -> None:
    registry, dirs = load_registry([])
    check_style(registry, str(picture), dirs)
    (user_data / "blue_poster.onnx").write_bytes(b"an export")
    code, out, _ = run(capsys, "styles")
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("blue_poster "))
    assert "instant" in row and str(user_data / "blue_poster.instant") in row
    assert any(line.split()[0] == "monet" for line in out.splitlines()[1:])  # the trained pack beside it

    code, _, err = run(capsys, "styles", "--remove", "monet")
    assert code == 2 and "--remove monet: a trained style, not an instant one; instant styles: blue_poster" in err
    code, out, err = run(capsys, "styles", "--remove", "blue_poster")
    assert code == 0, err
    assert list(user_data.iterdir()) == []
    code, out, _ = run(capsys, "styles")
    assert "blue_poster" not in out


def test_about_credits_the_microast_paper_and_licence() -> None:
    from nstcam.ui.dialogs import about_html

    text = about_html([])
    assert "MicroAST" in text and "Wang et al." in text and "AAAI 2023" in text and "MIT" in text
