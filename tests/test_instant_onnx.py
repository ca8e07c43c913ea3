"""MicroAST on ONNX Runtime (nstcam.engines.instant_onnx): the exported style encoder gives torch's
code, the frame graph that takes the code as an input runs instant styles as torch does, the ONNX
Runtime engine takes new styles while it runs, and without torch and Pillow (the lite bundle) a
picture still becomes a style; where nothing can encode it, that is one line."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from nstcam_fixtures import count_frames, make_video, pattern_image, video_frame
from nstcam.engines import instant_onnx, microast
from nstcam.engines.instant import InstantStyle, load_instant
from nstcam.engines.ort import OnnxStyleEngine
from nstcam.engines.torch_engine import StyleEngine
from nstcam.jobs.instant_style import read_picture, style_from_picture
from nstcam.launch import CliError, check_style, load_registry

CODE_TOLERANCE = 1e-4  # measured: at most 2.4e-6 apart (codes reach about 5.6)


@pytest.fixture(scope="module")
def graphs() -> tuple[Path, Path]:
    """The two graphs, exported once into the session's cache folder."""
    return instant_onnx.graph_files()


def pictures() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    gradient = np.zeros((17, 33, 3), np.uint8)  # odd sides
    gradient[..., 0] = np.linspace(0, 255, 33, dtype=np.uint8)[None]
    gradient[..., 2] = np.linspace(255, 0, 17, dtype=np.uint8)[:, None]
    return {"noise": rng.integers(0, 256, (384, 512, 3), dtype=np.uint8), "pattern": pattern_image(96, seed=4),
            "gradient": gradient}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return 10 * np.log10(255**2 / max(mse, 1e-12))


def test_the_onnx_style_encoder_gives_torchs_code(graphs) -> None:
    codes = {}
    for name, picture in pictures().items():
        codes[name] = instant_onnx.encode_style(picture).rows
        np.testing.assert_allclose(codes[name], microast.encode_style(picture).rows, rtol=0, atol=CODE_TOLERANCE,
                                   err_msg=name)
    assert np.abs(codes["noise"] - codes["pattern"]).max() > 0.1  # each picture its own code


def test_the_frame_graph_runs_instant_styles_like_torch(graphs) -> None:
    styles = {n: InstantStyle(microast.encode_style(p).rows, b"", {"name": n}) for n, p in pictures().items()}
    torch_engine = StyleEngine(styles, device="cpu", size=None, precision="fp32", channels_last=False)
    ort_engine = OnnxStyleEngine(styles, device="cpu", size=None)
    assert len({id(s) for s in ort_engine._sessions.values()}) == 1  # one shared graph for every instant style
    for frame in (video_frame(3, (160, 120)), video_frame(5, (150, 99))):  # 99: padded to a multiple of 4
        outputs = {}
        for name in styles:
            outputs[name] = ort_engine.stylize(frame, style=name)
            assert psnr(outputs[name], torch_engine.stylize(frame, style=name)) >= 40.0, name
        assert psnr(outputs["noise"], outputs["pattern"]) < 30.0  # the code input is used


def test_the_onnx_engine_adds_and_removes_styles_while_it_runs(graphs) -> None:
    first = InstantStyle(instant_onnx.encode_style(pattern_image(64, seed=1)).rows, b"", {"name": "first"})
    second = InstantStyle(instant_onnx.encode_style(pattern_image(64, seed=2)).rows, b"", {"name": "second"})
    engine = OnnxStyleEngine({"first": first}, device="cpu", size=None)
    frame = video_frame(2, (96, 64))
    engine.add_style("second", second)
    assert engine.style_names == ["first", "second"]
    alone = OnnxStyleEngine({"second": second}, device="cpu", size=None)
    np.testing.assert_array_equal(engine.stylize(frame, style="second"), alone.stylize(frame))
    with pytest.raises(ValueError, match="in use"):
        engine.remove_style("first")
    engine.set_style("second")
    engine.remove_style("first")
    assert engine.style_names == ["second"]
    with pytest.raises(KeyError):
        engine.stylize(frame, style="first")


def test_the_graphs_are_exported_once_and_again_when_damaged(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NSTCAM_CACHE_DIR", str(tmp_path / "cache"))
    encoder, frame = instant_onnx.graph_files()
    assert encoder.parent == frame.parent == tmp_path / "cache" / "onnx" / "microast"
    stamps = [encoder.stat().st_mtime_ns, frame.stat().st_mtime_ns]
    assert instant_onnx.graph_files() == (encoder, frame)
    assert [encoder.stat().st_mtime_ns, frame.stat().st_mtime_ns] == stamps  # reused, not exported again
    frame.write_bytes(b"half a file")
    instant_onnx.graph_files()
    assert frame.stat().st_size > 100_000
    assert sorted(p.name for p in frame.parent.iterdir()) == sorted([encoder.name, frame.name])  # no temp left


def test_without_the_graphs_or_torch_a_style_is_refused_in_one_line(tmp_path, monkeypatch,
                                                                      without_microast_graphs) -> None:
    """A lite bundle that lost its graphs: no torch to export them, so one line and nothing written."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    picture = tmp_path / "poster.png"
    cv2.imwrite(str(picture), pattern_image(64, seed=3))
    folder = tmp_path / "styles"
    with pytest.raises(instant_onnx.InstantUnavailable) as info:
        style_from_picture(picture, folder, runtime="onnxruntime")
    assert "\n" not in str(info.value) and "no ONNX export of MicroAST" in str(info.value)
    assert not folder.exists()
    registry, dirs = load_registry([], backend="onnxruntime")
    with pytest.raises(CliError) as cli:
        check_style(registry, str(picture), dirs, backend="onnxruntime")
    assert str(cli.value).startswith(f"--style {picture}: this nstcam has no ONNX export of MicroAST")


def _blocked(tmp_path: Path, *modules: str) -> Path:
    """A folder of packages that refuse to import: put first on PYTHONPATH, they hide the real ones."""
    folder = tmp_path / "block"
    for module in modules:
        (folder / module).mkdir(parents=True)
        (folder / module / "__init__.py").write_text(f'raise ImportError("no {module} here")\n')
    return folder


@pytest.mark.slow
def test_without_torch_or_pillow_a_picture_becomes_a_style_that_stylizes(graphs, tmp_path) -> None:
    """What the lite bundle does with `--style PICTURE`: the picture read with OpenCV, encoded by the
    ONNX style encoder (torch's code within CODE_TOLERANCE), frames stylized on the frame graph, and
    the style listed at the next launch."""
    picture, video, out = tmp_path / "Night Poster.png", make_video(tmp_path / "clip.avi", frames=4), tmp_path / "o.avi"
    cv2.imwrite(str(picture), pattern_image(96, seed=8))
    block = _blocked(tmp_path, "torch", "PIL")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(block), str(Path(__file__).parents[1])]),
           "XDG_DATA_HOME": str(tmp_path / "data")}  # NSTCAM_CACHE_DIR: the session's, with the graphs
    run = subprocess.run([sys.executable, "-m", "nstcam", "render", str(video), "-o", str(out), "--style", str(picture)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "ONNX Runtime" in run.stdout and "Traceback" not in run.stderr
    assert count_frames(out) == (4, (96, 64))
    first_in = cv2.VideoCapture(str(video)).read()[1].astype(int)
    first_out = cv2.VideoCapture(str(out)).read()[1].astype(int)
    assert np.abs(first_in - first_out).mean() > 10  # stylized
    made = tmp_path / "data" / "nstcam" / "styles" / "night_poster.instant"
    stored = load_instant(made)
    np.testing.assert_allclose(stored.code, microast.encode_style(read_picture(picture)).rows, rtol=0,
                               atol=CODE_TOLERANCE)
    assert "detail" in stored.meta  # calibrated without torch too
    listed = subprocess.run([sys.executable, "-m", "nstcam", "styles"], env=env, capture_output=True, text=True,
                            timeout=300)
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert "night_poster" in listed.stdout and "instant" in listed.stdout
