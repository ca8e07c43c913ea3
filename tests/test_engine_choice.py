"""`--backend auto`: the candidates' timing, the int8 picture gate, the remembered choice, and a
launch that shows its first frames without importing torch (the remembered choice is ONNX Runtime,
or torch in the engine process, for which ONNX Runtime stands in until it is ready)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nstcam.engines import choice as choices
from nstcam.engines.choice import MIN_INT8_PSNR, Candidate, Choice
from nstcam_fixtures import TINY_CONFIG, make_style_file, pattern_image

pytest.importorskip("onnxruntime")

TORCH_FP32, ORT_FP32, ORT_INT8 = Candidate("torch", "fp32"), Candidate("onnxruntime", "fp32"), Candidate("onnxruntime", "int8")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NSTCAM_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "backend_choice.json"


class FakeClock:
    """Each candidate's run of n frames advances the clock by n of that candidate's frame times."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def run(self, seconds: float, lanes: int = 1):
        def step(n: int) -> int:
            self.now += n * seconds
            return n * lanes
        return step


def test_the_fastest_candidate_is_chosen_and_explained() -> None:
    clock = FakeClock()
    runs = {TORCH_FP32: clock.run(0.100), ORT_FP32: clock.run(0.060), ORT_INT8: clock.run(0.080)}
    fps = choices.time_candidates(runs, clock=clock)
    assert fps[ORT_FP32] == pytest.approx(1 / 0.060) and fps[TORCH_FP32] == pytest.approx(10.0)
    chosen = choices.fastest(fps, {}, "320x240")
    assert chosen.chosen == ORT_FP32
    assert chosen.reason().startswith("ONNX Runtime fp32: the fastest at 320x240 (ONNX Runtime fp32 16.7")
    assert chosen.note() == "auto: fastest here, 1.33x the next"


def test_timing_interleaves_the_candidates_so_a_burst_of_load_hurts_all_alike() -> None:
    clock, order = FakeClock(), []
    runs = {c: (lambda n, c=c: order.append((c, n)) or n) for c in (TORCH_FP32, ORT_FP32)}
    choices.time_candidates(runs, rounds=3, frames=2, clock=clock)
    rounds = order[2:]  # after one warm-up frame each
    assert rounds == [(TORCH_FP32, 2), (ORT_FP32, 2)] * 3


def test_a_candidate_under_half_the_leaders_speed_is_timed_no_further() -> None:
    """The first launch waits for the timing: a candidate that cannot win costs it no more rounds."""
    clock, calls = FakeClock(), []
    fast, slow, near = clock.run(0.020), clock.run(0.050), clock.run(0.030)
    runs = {c: (lambda n, c=c, run=run: calls.append(c) or run(n))
            for c, run in ((ORT_INT8, fast), (TORCH_FP32, slow), (ORT_FP32, near))}
    fps = choices.time_candidates(runs, rounds=3, frames=2, clock=clock)
    assert calls.count(TORCH_FP32) == 2 and calls.count(ORT_INT8) == calls.count(ORT_FP32) == 4  # warm-up + rounds
    assert fps[TORCH_FP32] == pytest.approx(20.0) and fps[ORT_INT8] == pytest.approx(50.0)


def test_a_run_that_stylizes_frames_at_once_counts_each_frame() -> None:
    clock = FakeClock()
    two_lanes = clock.run(0.100, lanes=2)  # a frame for each lane every 0.1 s
    fps = choices.time_candidates({ORT_INT8: two_lanes, TORCH_FP32: clock.run(0.080)}, clock=clock)
    assert fps[ORT_INT8] == pytest.approx(20.0) and fps[TORCH_FP32] == pytest.approx(12.5)


def test_onnx_runtime_is_timed_with_its_frames_in_flight(tmp_path, cache, monkeypatch) -> None:
    """As the stylize thread and render run it: two lanes, and a lane done first takes the next
    frame instead of waiting for the other lane's (timed in pairs, it understated them 10-25 %)."""
    import threading

    from nstcam import autobackend
    from nstcam.engines.ort import OnnxStyleEngine
    from trainer.stylefile import load_style

    calls: list[str] = []
    lock, third_started, waited = threading.Lock(), threading.Event(), []
    stylize = OnnxStyleEngine.stylize

    def noting(self, frame, *args, **kwargs):
        thread = threading.current_thread().name.split("_")[0]
        with lock:
            calls.append(thread)
            index = sum(1 for t in calls if t == "timing")
        if thread == "timing" and index == 7:  # after both warm-ups (2 frames each): round 1's third frame
            third_started.set()
        if thread == "timing" and index == 5:  # round 1's first frame waits for its third to start
            waited.append(third_started.wait(10))
        return stylize(self, frame, *args, **kwargs)

    monkeypatch.setattr(OnnxStyleEngine, "stylize", noting)
    model = load_style(make_style_file(tmp_path / "alpha.pt", "alpha", seed=1))
    got = autobackend.measure(model, 32, threads=2)
    assert "timing" in calls and ORT_FP32.label in got.fps
    assert waited == [True]  # the other lane went on to the third frame meanwhile


def test_int8_below_the_psnr_gate_is_no_candidate() -> None:
    assert choices.int8_exclusion(MIN_INT8_PSNR) is None
    why = choices.int8_exclusion(26.0)
    assert why is not None and "26.0 dB" in why
    a = np.full((8, 8, 3), 100, np.uint8)
    assert choices.psnr(a, a) == float("inf")
    assert choices.psnr(a, a + 3) == pytest.approx(10 * np.log10(255**2 / 9))


def test_measure_leaves_out_int8_that_breaks_the_picture(tmp_path, cache, monkeypatch) -> None:
    from nstcam import autobackend
    from trainer.stylefile import load_style

    model = load_style(make_style_file(tmp_path / "alpha.pt", "alpha", seed=1))
    monkeypatch.setattr(choices, "psnr", lambda a, b: 30.0)  # what AVX2 saturation did to int8
    got = autobackend.measure(model, 32, threads=1)
    assert ORT_INT8.label not in got.fps and "30.0 dB" in got.excluded[ORT_INT8.label]
    assert {TORCH_FP32.label, ORT_FP32.label} <= set(got.fps) and all(f > 0 for f in got.fps.values())
    monkeypatch.setattr(choices, "psnr", lambda a, b: MIN_INT8_PSNR)
    assert ORT_INT8.label in autobackend.measure(model, 32, threads=1).fps


def test_a_choice_is_remembered_per_machine_network_and_size(cache, monkeypatch) -> None:
    made = Choice(ORT_INT8, {ORT_INT8.label: 14.0, TORCH_FP32.label: 10.0}, {"x": "why"}, "320x240")
    key = choices.choice_key("net1", 240, threads=2)
    choices.remember(key, made)
    again = choices.recall(key)
    assert again is not None and again.remembered and again.chosen == ORT_INT8 and again.fps == made.fps
    assert "earlier launch" in again.reason() and again.excluded == {"x": "why"}
    assert choices.recall(choices.choice_key("net1", 480, threads=2)) is None
    assert choices.recall(choices.choice_key("net2", 240, threads=2)) is None
    assert choices.remembered_here(2) and not choices.remembered_here(1)
    monkeypatch.setenv("NSTCAM_NO_NATIVE_BF16", "1")  # an emulated AVX2 CPU is another machine
    assert choices.recall(choices.choice_key("net1", 240, threads=2)) is None


def test_a_close_call_is_measured_again_and_each_candidate_keeps_its_best_figure(tmp_path, cache,
                                                                                monkeypatch) -> None:
    """A first launch timed during a burst of other work must not decide for good."""
    from nstcam import autobackend
    from trainer.stylefile import load_style

    model = load_style(make_style_file(tmp_path / "s.pt", "s", 1, config=TINY_CONFIG))
    timings = iter([  # (torch fp32, ONNX Runtime int8) frames/s at three launches
        (10.0, 10.4),  # a burst slowed torch: int8 "leads" by 1.04x
        (13.0, 10.2),
        (12.5, 10.6),
    ])

    def measure(model, size, threads) -> Choice:
        torch_fps, int8_fps = next(timings)
        fps = {TORCH_FP32.label: torch_fps, ORT_INT8.label: int8_fps}
        return Choice(max((TORCH_FP32, ORT_INT8), key=lambda c: fps[c.label]), fps, {}, "320x240")

    monkeypatch.setattr(autobackend, "measure", measure)
    first = autobackend.auto_choice(model, 240, 2)
    assert first.chosen == ORT_INT8 and not first.settled and "close call" in first.reason()
    second = autobackend.auto_choice(model, 240, 2)  # measured again: torch's 13.0 stands
    assert second.chosen == TORCH_FP32 and second.fps == {TORCH_FP32.label: 13.0, ORT_INT8.label: 10.4}
    assert second.settled  # 13.0 / 10.4 = 1.25x: a clear lead, no third timing
    assert autobackend.auto_choice(model, 240, 2).chosen == TORCH_FP32
    assert next(timings) == (12.5, 10.6)  # the third timing was never needed


def test_instant_styles_share_one_architecture_apart_from_trained_networks(tmp_path) -> None:
    """An instant style has no TransformerConfig; its choice is remembered under MicroAST's id."""
    from nstcam.engines.instant import InstantStyle
    from trainer.stylefile import load_style

    trained = load_style(make_style_file(tmp_path / "a-light.pt", "a", seed=1))
    first = InstantStyle(np.zeros(8, np.float32), b"")
    second = InstantStyle(np.ones(8, np.float32), b"")
    assert choices.model_arch_id(first) == choices.model_arch_id(second) != choices.model_arch_id(trained)
    assert choices.model_arch_id(trained) == choices.arch_id(trained.config.to_dict())


def test_a_damaged_cache_means_measuring_again(cache) -> None:
    cache.parent.mkdir(parents=True)
    key = choices.choice_key("net1", 240, threads=2)
    cache.write_text(json.dumps({key: {"backend": "onnxruntime", "precision": "fp32", "fps": {}}}))
    assert choices.recall(key) is None  # the chosen one was never timed: not trusted
    cache.write_text("{not json")
    assert choices.recall(key) is None


def test_the_bf16_override_makes_bf16_not_native(monkeypatch) -> None:
    from trainer.devices import cpu_bf16_supported

    monkeypatch.setenv("NSTCAM_NO_NATIVE_BF16", "1")
    assert cpu_bf16_supported() is False


LAUNCH = """
import sys
from pathlib import Path


def main() -> None:
    import nstcam.registry
    nstcam.registry.bundled_styles_dir = lambda: Path(sys.argv[1]) / "none"
    from nstcam.cli import window_parser
    from nstcam.launch import prepare_window
    launch = prepare_window(window_parser().parse_args(["--camera", "demo", "--size", "32", "--styles-dir", sys.argv[1]]))
    import numpy as np
    for name in launch.engine.style_names:  # the live frame, then each style's thumbnail
        launch.engine.stylize(np.zeros((48, 64, 3), np.uint8), style=name)
    print("torch imported:", "torch" in sys.modules)
    print("engine:", launch.engine.describe())
    print("styles:", " ".join(launch.engine.style_names))
    print("exporting:", launch.background.files if launch.background else None)
    getattr(launch.engine, "close", lambda: None)()


if __name__ == "__main__":  # the engine process and the background export are spawned: they import this
    main()
"""


@pytest.mark.slow
def test_a_remembered_onnx_runtime_choice_launches_without_torch(tmp_path) -> None:
    folder = tmp_path / "styles"
    folder.mkdir()
    for seed, name in enumerate(("alpha", "beta"), 1):
        make_style_file(folder / f"{name}.pt", name, seed=seed)
    env = {**os.environ, "NSTCAM_CACHE_DIR": str(tmp_path / "cache"), "XDG_DATA_HOME": str(tmp_path / "data"),
           "PYTHONPATH": str(Path(__file__).parents[1])}
    script = tmp_path / "launch.py"
    script.write_text(LAUNCH)

    def launch() -> str:
        run = subprocess.run([sys.executable, str(script), str(folder)], env=env, capture_output=True,
                             text=True, timeout=600)
        assert run.returncode == 0, run.stderr[-2000:]
        return run.stdout + run.stderr

    first = launch()  # measures, remembers, exports
    entries = json.loads((tmp_path / "cache" / "backend_choice.json").read_text())
    (entry,) = entries.values()
    assert "torch imported: True" in first and "auto: fastest here" in first
    entry.update(backend="onnxruntime", precision="fp32", fps={"ONNX Runtime fp32": 99.0, "torch fp32": 1.0})
    (tmp_path / "cache" / "backend_choice.json").write_text(json.dumps(entries))  # as if ORT had won here
    second = launch()
    assert "torch imported: False" in second and "ONNX Runtime" in second and "auto: fastest here" in second
    close = dict(entry, fps={"ONNX Runtime fp32": 10.4, "torch fp32": 10.0}, timings=1)
    (tmp_path / "cache" / "backend_choice.json").write_text(json.dumps({key: close for key in entries}))
    assert "torch imported: True" in launch()  # a close call is measured again, with torch
    (tmp_path / "cache" / "backend_choice.json").write_text(json.dumps(entries))
    # an instant style in the user's folder: still no torch, and the style is there (MicroAST's graph)
    from nstcam.engines.instant import InstantStyle, save_instant
    from nstcam.engines.instant_onnx import export_graphs
    from nstcam.engines.microast import encode_style

    export_graphs(tmp_path / "cache" / "onnx" / "microast")  # the user cache of the launch (NSTCAM_CACHE_DIR)
    code = encode_style(pattern_image(64, seed=2)).rows
    save_instant(tmp_path / "data" / "nstcam" / "styles" / "poster.instant", InstantStyle(code, b"", {"name": "poster"}))
    with_instant = launch()
    assert "torch imported: False" in with_instant and "poster" in with_instant.split("styles:")[1]
    entry.update(backend="torch", precision="fp32", fps={"ONNX Runtime fp32": 1.0, "torch fp32": 99.0})
    (tmp_path / "cache" / "backend_choice.json").write_text(json.dumps(entries))  # torch won here
    third = launch()  # ONNX Runtime stands in while the engine process loads torch
    assert "torch imported: False" in third and "starting torch fp32" in third and "exporting: None" in third
    assert "engine:" in third and "Traceback" not in third
    export = folder / "alpha.onnx"  # the style the window starts with: its session opens at launch
    intact = export.read_bytes()
    export.write_bytes(intact.replace(b"Conv", b"Cxnv"))  # metadata intact, graph unloadable
    damaged = launch()
    assert "alpha.onnx: not a loadable ONNX model" in damaged and "starting with torch instead" in damaged
    assert "torch imported: True" in damaged
    export.write_bytes(intact)
    entry.update(backend="onnxruntime", precision="fp32", fps={"ONNX Runtime fp32": 99.0, "torch fp32": 1.0})
    (tmp_path / "cache" / "backend_choice.json").write_text(json.dumps(entries))
    (folder / "beta.onnx").unlink()  # a first session too short for the thumbnails to export every style
    short = launch()
    assert "torch imported: False" in short and "beta" in short.split("styles:")[1]  # exported elsewhere
    from nstcam.engines.onnx_export import is_current

    assert is_current(folder / "beta.onnx", folder / "beta.pt")  # made on beta's first frame
    entry.update(backend="torch", precision="fp32", fps={"ONNX Runtime fp32": 1.0, "torch fp32": 99.0})
    (tmp_path / "cache" / "backend_choice.json").write_text(json.dumps(entries))
    (folder / "alpha.pt").unlink()
    make_style_file(folder / "alpha.pt", "alpha", seed=7)  # retrained: its export is stale
    fourth = launch()
    assert "torch imported: True" in fourth  # the torch path decides, and exports it in the background
    assert "exporting: [" in fourth and "alpha.pt" in fourth and "beta.pt" not in fourth


@pytest.mark.slow
def test_a_remembered_launch_leaves_missing_exports_to_their_styles_first_frames(tmp_path, cache) -> None:
    """Only the launch style needs its export (int8 here) before the first frame."""
    from nstcam.autobackend import remembered_launch
    from nstcam.engines.onnx_export import ensure_onnx
    from nstcam.engines.ort import LateExport
    from nstcam.live.demo import calibration_frames
    from trainer.stylefile import load_style

    alpha, beta = (make_style_file(tmp_path / f"{name}.pt", name, seed=seed) for seed, name in enumerate(("alpha", "beta"), 1))
    ensure_onnx(alpha, "int8", calibration_frames())
    choices.remember(choices.choice_key(choices.model_arch_id(load_style(alpha)), 32, threads=2),
                     Choice(ORT_INT8, {ORT_INT8.label: 99.0, TORCH_FP32.label: 1.0}, {}, "42x32"))
    launch = remembered_launch([tmp_path], 32, 2, None)
    models = launch.registry.select("cpu")
    assert models["alpha"].path == tmp_path / "alpha.int8.onnx" and not isinstance(models["alpha"], LateExport)
    assert isinstance(models["beta"], LateExport) and models["beta"].path == tmp_path / "beta.int8.onnx"
    assert launch.sources == {"alpha": alpha, "beta": beta}
    assert remembered_launch([tmp_path], 32, 2, "beta") is None  # torch decides, and exports it first
    choices.remember(choices.choice_key(choices.model_arch_id(load_style(alpha)), 32, threads=2),
                     Choice(TORCH_FP32, {TORCH_FP32.label: 99.0, ORT_INT8.label: 1.0}, {}, "42x32"))
    assert remembered_launch([tmp_path], 32, 2, None) is None  # the engine process would load torch beside it
    models["beta"].make()
    assert (tmp_path / "beta.onnx").is_file()  # its fp32 export, which finds it without torch
    again = remembered_launch([tmp_path], 32, 2, "beta").registry.select("cpu")
    assert not any(isinstance(model, LateExport) for model in again.values())
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(beta, copy / "beta-light.pt")  # which of two files runs: the torch path loads them to tell
    assert remembered_launch([tmp_path, copy], 32, 2, None) is None


@pytest.mark.slow
def test_a_style_file_whose_weights_do_not_load_is_left_to_the_torch_path_once_found(tmp_path, cache) -> None:
    """Its header reads, so a launch without torch offers it; its export finds it unusable, and
    from then on the launch goes through torch, which lists it among the broken styles."""
    from nstcam.autobackend import remembered_launch
    from nstcam.engines.onnx_export import ExportError, ensure_onnx
    from nstcam.engines.ort import LateExport
    from nstcam.registry import StyleRegistry
    from nstcam_fixtures import spoil_weights
    from trainer.stylefile import load_style

    alpha = make_style_file(tmp_path / "alpha.pt", "alpha", seed=1)
    spoiled = spoil_weights(make_style_file(tmp_path / "beta.pt", "beta", seed=2), float("nan"))
    ensure_onnx(alpha)
    choices.remember(choices.choice_key(choices.model_arch_id(load_style(alpha)), 32, threads=2),
                     Choice(ORT_FP32, {ORT_FP32.label: 99.0, TORCH_FP32.label: 1.0}, {}, "42x32"))
    late = remembered_launch([tmp_path], 32, 2, None).registry.select("cpu")["beta"]
    assert isinstance(late, LateExport)
    with pytest.raises(ExportError, match="weights contain NaN/Inf"):
        late.make()
    assert remembered_launch([tmp_path], 32, 2, None) is None
    errors = dict(StyleRegistry.discover([tmp_path], runtime="export").errors)
    assert errors == {spoiled: "weights contain NaN/Inf; retrain or restore it"}


def test_doctor_tells_what_was_chosen_and_why(cache) -> None:
    from nstcam.doctor import Context, check_backend_choice

    (before,) = check_backend_choice(Context())
    assert "none measured yet" in before.detail
    choices.remember(choices.choice_key("net1", 240, threads=os.cpu_count() or 1),
                     Choice(ORT_FP32, {ORT_FP32.label: 12.0, TORCH_FP32.label: 9.0}, {}, "320x240"))
    (after,) = check_backend_choice(Context())
    assert "size 240 | net net1: ONNX Runtime fp32: the fastest at 320x240" in after.detail


@pytest.mark.slow
def test_missing_exports_are_made_in_the_background_for_the_next_launch(tmp_path) -> None:
    from nstcam.engines.onnx_export import ensure_onnx, is_current, onnx_path
    from nstcam.engines.quick_start import BackgroundExport, missing_exports

    files = [make_style_file(tmp_path / f"{name}.pt", name, seed=seed) for seed, name in enumerate("ab", 1)]
    ensure_onnx(files[0])
    truncated = tmp_path / "broken.pt"
    truncated.write_bytes(files[1].read_bytes()[:200])  # listed as corrupt; not offered for export
    assert missing_exports([*files, truncated]) == [files[1]]
    background = BackgroundExport(files)
    background.process.join(300)
    assert background.process.exitcode == 0 and missing_exports(files) == []
    assert is_current(onnx_path(files[1]), files[1])
    assert BackgroundExport(files).process is None  # nothing to do: no process
    files.append(make_style_file(tmp_path / "c.pt", "c", seed=3))
    stopped = BackgroundExport(files)
    stopped.stop()  # the app closed at once: the export ends, leaving no partial file
    assert not stopped.process.is_alive()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_doctor_tells_which_styles_keep_the_window_from_starting_without_torch(tmp_path, monkeypatch) -> None:
    import nstcam.registry
    from nstcam.doctor import Context, check_quick_start
    from nstcam.engines.onnx_export import ensure_onnx

    # Only this folder's styles: the doctor names four, and whether the bundled ones have their
    # exports yet depends on which launches ran before (each exports a style when it first runs).
    monkeypatch.setattr(nstcam.registry, "bundled_styles_dir", lambda: tmp_path / "no bundled styles")
    style = make_style_file(tmp_path / "lagoon.pt", "lagoon", seed=4)
    (before,) = check_quick_start(Context(styles_dirs=(tmp_path,)))
    assert "lagoon.pt" in before.detail and "exports them while it runs" in before.detail
    ensure_onnx(style)
    (after,) = check_quick_start(Context(styles_dirs=(tmp_path,)))
    assert "lagoon.pt" not in after.detail
