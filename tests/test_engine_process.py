"""The engine in a child process: same output as in-process, in-process until ready and after a crash."""
from __future__ import annotations

import numpy as np
import pytest

from nstcam.engines.torch_engine import StyleEngine
from nstcam.engines.process import ProcessEngine
from nstcam_fixtures import video_frame

WAIT = 60.0


@pytest.fixture(scope="module")
def process_engine(style_models):
    engine = ProcessEngine(StyleEngine(style_models, device="cpu", size=32, channels_last=False,
                                       precision="fp32"), threads=1)
    yield engine
    assert engine.close()


def wait_ready(engine: ProcessEngine) -> None:
    import time

    if engine._process is None:
        engine.stylize(video_frame(0))  # the child starts after the first frame
    deadline = time.monotonic() + WAIT
    while not engine._child_ready():  # polls the pipe; no event to await across processes
        assert time.monotonic() < deadline, "engine process not ready"
        engine._conn.poll(0.1)


@pytest.mark.slow
def test_child_output_matches_the_in_process_engine(process_engine) -> None:
    frame = video_frame(3)
    assert process_engine._process is None  # nothing competes with the launch for the cores
    early = process_engine.stylize(frame, "beta")  # before the child is ready: in-process
    assert process_engine._process is not None  # the first frame started the child
    wait_ready(process_engine)
    assert process_engine.in_child and "engine process" in process_engine.describe()
    child = process_engine.stylize(frame, "beta")
    expected = process_engine.inner.stylize(frame, "beta")
    assert child.shape == expected.shape == (32, 48, 3)
    assert np.array_equal(child, expected) and np.array_equal(early, expected)
    process_engine.size = 16  # the brush size reaches the child
    assert process_engine.stylize(frame).shape == (16, 24, 3)
    process_engine.size = 32
    assert process_engine.stats.frames >= 3


@pytest.mark.slow
def test_child_errors_are_raised_in_the_caller(process_engine) -> None:
    wait_ready(process_engine)
    with pytest.raises(KeyError):
        process_engine.stylize(video_frame(0), "no-such-style")
    with pytest.raises(ValueError):
        process_engine.stylize(np.zeros((4, 4), np.uint8))
    assert process_engine.in_child  # an error in one frame keeps the child


@pytest.mark.slow
def test_a_dead_child_falls_back_in_process_with_a_notice(process_engine) -> None:
    notices: list[str] = []
    process_engine.on_notice = notices.append
    wait_ready(process_engine)
    process_engine._process.kill()
    process_engine._process.join(WAIT)
    out = process_engine.stylize(video_frame(1))
    assert out.shape == (32, 48, 3) and not process_engine.in_child
    assert notices and "in-process" in notices[0]
    assert process_engine.stylize(video_frame(2)).shape == (32, 48, 3)


def test_the_window_launch_puts_a_cpu_torch_engine_in_a_process_unless_told_not_to(style_files) -> None:
    from nstcam.cli import window_parser
    from nstcam.launch import prepare_window

    folder = str(next(iter(style_files.values())).parent)
    common = ["--camera", "demo", "--device", "cpu", "--backend", "torch", "--styles-dir", folder, "--size", "32"]
    on = prepare_window(window_parser().parse_args(common))
    off = prepare_window(window_parser().parse_args([*common, "--engine-process", "off"]))
    try:
        assert isinstance(on.engine, ProcessEngine) and isinstance(off.engine, StyleEngine)
    finally:
        assert on.engine.close()


@pytest.mark.slow
def test_a_style_added_at_run_time_runs_in_the_child(style_models) -> None:
    engine = ProcessEngine(StyleEngine({"alpha": style_models["alpha"]}, device="cpu", size=32,
                                       channels_last=False, precision="fp32"), threads=1)
    try:
        wait_ready(engine)
        engine.add_style("late", style_models["beta"])  # StyleEngine.add_style, via the wrapper
        frame = video_frame(2)
        out = engine.stylize(frame, "late")
        assert engine.in_child and np.array_equal(out, engine.inner.stylize(frame, "late"))
        assert not np.array_equal(out, engine.stylize(frame, "alpha"))
    finally:
        assert engine.close()


@pytest.mark.slow
def test_closing_while_the_child_is_stopped_neither_hangs_nor_orphans_it(style_models) -> None:
    import os
    import signal
    import threading
    import time

    from nstcam.engines.process import CLOSE_SECONDS

    engine = ProcessEngine(StyleEngine(style_models, device="cpu", size=32, channels_last=False,
                                       precision="fp32"), threads=1)
    wait_ready(engine)
    child = engine._process
    os.kill(child.pid, signal.SIGSTOP)  # what `kill -STOP` or a debugger does
    try:
        frames: list[np.ndarray] = []
        waiting = threading.Thread(target=lambda: frames.append(engine.stylize(video_frame(1))), daemon=True)
        waiting.start()
        deadline = time.monotonic() + WAIT
        while not engine._lock.locked():  # the frame is with the stopped child
            assert time.monotonic() < deadline and waiting.is_alive()
            waiting.join(0.01)
        closed: list[bool] = []
        closer = threading.Thread(target=lambda: closed.append(engine.close()), daemon=True)
        closer.start()
        closer.join(CLOSE_SECONDS + 3)  # a close that waits on the stopped child fails here, not hangs
        assert closed == [True]
        waiting.join(WAIT)
        assert not waiting.is_alive() and frames[0].shape == (32, 48, 3)  # stylized in-process instead
        assert child.exitcode is not None  # killed and reaped: no orphan left behind
    finally:
        if child.is_alive():
            child.kill()


@pytest.mark.slow
def test_onnx_runtime_stands_in_until_the_child_loads_the_style_files(style_files, style_models) -> None:
    """The torch-free start: ONNX Runtime runs the first frames, the child loads the style files
    itself and runs them at the measured precision, as the in-process torch engine would."""
    pytest.importorskip("onnxruntime")
    from nstcam.engines.onnx_export import ensure_onnx
    from nstcam.engines.ort import OnnxStyleEngine

    stand_in = OnnxStyleEngine({name: ensure_onnx(path) for name, path in style_files.items()}, device="cpu",
                               size=32, threads=1)
    engine = ProcessEngine(stand_in, threads=1, sources=style_files, precision="fp32")
    torch_engine = StyleEngine(style_models, device="cpu", size=32, channels_last=False, precision="fp32")
    frame = video_frame(4)
    try:
        assert "starting torch fp32" in engine.describe()
        early = engine.stylize(frame, "beta")
        assert np.array_equal(early, stand_in.stylize(frame, "beta"))  # ONNX Runtime's frame
        wait_ready(engine)
        assert engine.precision == "fp32" and engine.describe() == "cpu fp32 · engine process"
        child = engine.stylize(frame, "beta")
        assert np.array_equal(child, torch_engine.stylize(frame, "beta"))
        assert not np.array_equal(child, engine.stylize(frame, "alpha"))
        engine.add_style("late", style_models["alpha"])  # a style trained in the app: both engines take it
        assert np.array_equal(engine.stylize(frame, "late"), torch_engine.stylize(frame, "alpha"))
        late_ort = stand_in.stylize(frame, "late").astype(int)  # its export, should the child fail
        assert np.abs(late_ort - torch_engine.stylize(frame, "alpha").astype(int)).max() <= 2
        from nstcam.engines.instant import InstantStyle  # a dropped picture: both run its code
        from nstcam.engines.microast import encode_style
        from nstcam_fixtures import pattern_image

        poster = InstantStyle(encode_style(pattern_image(64, seed=3)).rows, b"", {"name": "poster"})
        engine.add_style("poster", poster)
        torch_engine.add_style("poster", poster)
        assert np.array_equal(engine.stylize(frame, "poster"), torch_engine.stylize(frame, "poster"))
        assert np.abs(stand_in.stylize(frame, "poster").astype(int)
                      - torch_engine.stylize(frame, "poster").astype(int)).mean() < 2
    finally:
        assert engine.close()
