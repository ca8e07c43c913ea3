"""Instant styles: the file, the registry, the engines' frame path and the style-code cache."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from nstcam.engines import microast
from nstcam.engines.instant import SUFFIX, InstantStyleError, load_instant, save_instant
from nstcam.engines.torch_engine import StyleEngine
from nstcam.jobs.instant_style import make_instant_style, remove_instant_style, style_from_picture, style_name
from nstcam.registry import StyleRegistry
from nstcam_fixtures import make_style_file


def painting(seed: int = 0, size: tuple[int, int] = (48, 64)) -> np.ndarray:
    """A generated RGB "painting": coloured blobs and stripes."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (6, 8, 3)).astype(np.float32)
    img = cv2.resize(coarse, size[::-1], interpolation=cv2.INTER_CUBIC)
    img[:, ::6] *= 0.4
    return np.clip(img, 0, 255).astype(np.uint8)


def photo(h: int = 48, w: int = 64) -> np.ndarray:
    """A BGR frame with edges and gradients."""
    y, x = np.mgrid[0:h, 0:w]
    frame = np.stack([x * 255 // w, y * 255 // h, (x + y) * 127 // (w + h)], -1).astype(np.uint8)
    cv2.rectangle(frame, (w // 4, h // 4), (w // 2, h // 2), (20, 200, 240), -1)
    return frame


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "styles"


def test_file_round_trip_keeps_code_thumbnail_and_meta(folder: Path) -> None:
    style = make_instant_style(painting(), folder, "Starry Night", source="starry.jpg")
    assert style.path == folder / f"starry_night{SUFFIX}"
    back = load_instant(style.path)
    np.testing.assert_array_equal(back.code, style.code)
    assert back.thumbnail_png == style.thumbnail_png and back.thumbnail_png.startswith(b"\x89PNG")
    assert back.meta["name"] == "starry_night" and back.meta["source"] == "starry.jpg"
    assert back.meta["variant"] == "instant"
    assert style.path.stat().st_size < 40_000
    assert [p.name for p in folder.iterdir()] == [style.path.name]  # no temp file left


def test_damaged_or_foreign_files_are_refused_with_the_file_named(tmp_path: Path, folder: Path) -> None:
    good = make_instant_style(painting(), folder, "good")
    data = good.path.read_bytes()
    cut = tmp_path / f"cut{SUFFIX}"
    cut.write_bytes(data[: len(data) // 2])
    text = tmp_path / f"text{SUFFIX}"
    text.write_text("hello")
    for bad in (cut, text, tmp_path / f"missing{SUFFIX}"):
        with pytest.raises(InstantStyleError, match=bad.name):
            load_instant(bad)
    pickled = tmp_path / f"pickled{SUFFIX}"
    with pickled.open("wb") as f:
        np.savez(f, format=np.array([{"a": 1}], dtype=object))
    with pytest.raises(InstantStyleError) as refused:
        load_instant(pickled)
    assert str(refused.value) == f"{pickled}: damaged or not an instant style file (it holds pickled Python objects)"


def test_a_newer_format_version_asks_for_an_upgrade(folder: Path) -> None:
    style = make_instant_style(painting(), folder, "x")
    import io
    import json

    buf = io.BytesIO()
    np.savez(buf, format=np.array("nstcam-instant-style"), version=np.array(99), code=style.code,
             thumbnail=np.frombuffer(style.thumbnail_png, np.uint8), meta=np.array(json.dumps(style.meta)))
    style.path.write_bytes(buf.getvalue())
    with pytest.raises(InstantStyleError, match="upgrade nstcam"):
        load_instant(style.path)


def test_names_come_from_the_picture_and_avoid_taken_ones() -> None:
    assert style_name("The Starry Night (1889)") == "the_starry_night_1889"
    assert style_name("monet", taken={"monet", "monet_2"}) == "monet_3"
    assert style_name("???") == "picture"


def test_the_same_picture_again_reuses_its_style_without_encoding(folder: Path, monkeypatch) -> None:
    first = make_instant_style(painting(), folder, "a")
    calls = []
    monkeypatch.setattr(microast.StyleEncoder, "forward", lambda self, x: calls.append(x) or 1 / 0)
    again = make_instant_style(painting(), folder, "b")
    assert again.path == first.path and calls == []
    assert len(list(folder.iterdir())) == 1


def test_registry_lists_instant_styles_beside_trained_ones(tmp_path: Path, folder: Path) -> None:
    trained = tmp_path / "trained"
    trained.mkdir()
    make_style_file(trained / "zebra-light.pt", "zebra", seed=1)
    make_instant_style(painting(), folder, "poster")
    reg = StyleRegistry.discover([trained, folder])
    assert reg.names() == ["poster", "zebra"]
    entry = reg.choose("poster", "cpu")
    assert entry.variant == "instant" and entry.path.suffix == SUFFIX
    assert reg.choose("poster", "cuda").variant == "instant"
    assert not reg.errors


def test_engine_runs_instant_and_trained_styles_in_one_frame_path(tmp_path: Path, folder: Path, monkeypatch) -> None:
    """Per frame only the content encoder and decoder run: the style encoder is never called
    after the style is made, however many frames, styles switched or styles added."""
    make_style_file(tmp_path / "zebra-light.pt", "zebra", seed=1)
    reg = StyleRegistry.discover([tmp_path, folder])
    a = make_instant_style(painting(0), folder, "a")
    b = make_instant_style(painting(1), folder, "b")
    calls = []
    real = microast.StyleEncoder.forward
    monkeypatch.setattr(microast.StyleEncoder, "forward", lambda self, x: calls.append(1) or real(self, x))
    engine = StyleEngine({**reg.select("cpu"), "a": a}, device="cpu", size=None, precision="fp32",
                         channels_last=False)
    engine.add_style("b", b)
    frame = photo()
    outs = {}
    for name in ("a", "b", "zebra", "a"):
        outs[name] = engine.stylize(frame, style=name)
        assert outs[name].shape == (48, 64, 3) and outs[name].dtype == np.uint8
    assert calls == []
    rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB).astype(int)
    assert np.abs(outs["a"].astype(int) - rgb).mean() > 10  # styled
    assert np.abs(outs["a"].astype(int) - outs["b"]).mean() > 3  # by its own painting


def test_style_is_encoded_once_per_picture(folder: Path, monkeypatch) -> None:
    calls = []
    real = microast.StyleEncoder.forward
    monkeypatch.setattr(microast.StyleEncoder, "forward", lambda self, x: calls.append(1) or real(self, x))
    style = make_instant_style(painting(), folder, "a")
    engine = StyleEngine({"a": load_instant(style.path)}, device="cpu", size=None, precision="fp32",
                         channels_last=False)
    for _ in range(3):
        engine.stylize(photo())
    assert len(calls) == 1


def test_onnx_runtime_runs_the_exported_instant_style_like_torch(folder: Path) -> None:
    pytest.importorskip("onnxruntime")
    from nstcam.engines.onnx_export import ensure_onnx
    from nstcam.engines.ort import OnnxStyleEngine

    style = make_instant_style(painting(), folder, "a")
    exported = ensure_onnx(style.path)
    assert exported == folder / "a.onnx"
    ort = OnnxStyleEngine({"a": exported}, device="cpu", size=None, threads=1)
    torch_engine = StyleEngine({"a": style}, device="cpu", size=None, precision="fp32", channels_last=False)
    for h, w in ((48, 64), (42, 62)):  # the second is padded to the graph's side multiple and cropped
        frame = photo(h, w)
        a, b = ort.stylize(frame), torch_engine.stylize(frame)
        assert a.shape == b.shape == (h, w, 3)
        assert np.abs(a.astype(int) - b).max() <= 2
    remove_instant_style(style)
    assert list(folder.iterdir()) == []


def test_removing_deletes_the_file_and_its_exports(folder: Path) -> None:
    style = make_instant_style(painting(), folder, "a")
    (folder / "a.onnx").write_bytes(b"export")
    (folder / "a.int8.onnx").write_bytes(b"export")
    other = make_instant_style(painting(3), folder, "ab")
    remove_instant_style(style)
    assert sorted(p.name for p in folder.iterdir()) == [other.path.name]


def test_style_from_picture_reads_the_file(tmp_path: Path, folder: Path) -> None:
    picture = tmp_path / "My Poster.png"
    cv2.imwrite(str(picture), painting()[..., ::-1])
    style = style_from_picture(picture, folder)
    assert style.name == "my_poster" and style.meta["source"] == str(picture.resolve())  # for training it later
    np.testing.assert_array_equal(load_instant(style.path).code,
                                  microast.encode_style(painting()).rows)


def test_saving_into_an_unwritable_place_leaves_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    style = make_instant_style(painting(), tmp_path / "ok", "a")
    with pytest.raises(OSError):
        save_instant(blocker / "a.instant", style)
    assert blocker.read_text() == "not a folder"


@pytest.mark.slow
def test_the_engine_process_takes_a_new_style_of_a_removed_ones_name(folder: Path, tmp_path: Path) -> None:
    """Remove an instant style, make another of the same name: the child runs the new one."""
    import time

    from nstcam.engines.process import ProcessEngine

    make_style_file(tmp_path / "zebra-light.pt", "zebra", seed=1)
    trained = StyleRegistry.discover([tmp_path]).select("cpu")
    engine = ProcessEngine(StyleEngine(trained, device="cpu", size=None, precision="fp32", channels_last=False),
                           threads=1)
    try:
        frame = photo()
        engine.stylize(frame)  # starts the child
        deadline = time.monotonic() + 60
        while not engine.in_child:
            assert time.monotonic() < deadline, "engine process not ready"
            engine.stylize(frame)
        first = make_instant_style(painting(0), folder, "a")
        engine.add_style("a", first)
        old = engine.stylize(frame, "a")
        engine.remove_style("a")
        assert "a" not in engine.style_names
        remove_instant_style(first)
        second = make_instant_style(painting(1), folder, "a")
        engine.add_style("a", second)
        new = engine.stylize(frame, "a")
        here = engine.inner.stylize(frame, "a")  # in this process (other thread count: rounding)
        assert engine.in_child and np.abs(new.astype(int) - here).max() <= 2
        assert np.abs(new.astype(int) - old).mean() > 3  # not the removed style's network
    finally:
        assert engine.close()


def test_a_damaged_instant_file_is_listed_as_broken_and_the_rest_load(folder: Path) -> None:
    good = make_instant_style(painting(), folder, "good")
    (folder / f"bad{SUFFIX}").write_bytes(good.path.read_bytes()[:100])
    reg = StyleRegistry.discover([folder])
    assert reg.names() == ["good"]
    assert [(p.name, "damaged" in reason) for p, reason in reg.errors] == [(f"bad{SUFFIX}", True)]


def test_an_int8_export_leaves_nothing_in_the_working_folder(tmp_path: Path, folder: Path, monkeypatch) -> None:
    """ONNX Runtime's symbolic shape inference cannot complete MicroAST's graph and then wrote its
    debug model and data files into the current folder (the user's, wherever nstcam was started)."""
    pytest.importorskip("onnxruntime")
    from nstcam.engines.onnx_export import export_model
    from nstcam.live.demo import calibration_frames

    style = make_instant_style(painting(), folder, "blobs")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    export_model(style, tmp_path / "out" / "blobs.int8.onnx", "int8", calibration_frames(2))
    assert list(cwd.iterdir()) == []
