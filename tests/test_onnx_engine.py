"""The ONNX Runtime engine: parity with the torch engine, StyleEngine's interface, no torch at run time."""
from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from nstcam.engines import onnx_export  # noqa: E402
from nstcam.live.demo import calibration_frames  # noqa: E402
from nstcam.live.demo import DemoSource  # noqa: E402
from nstcam.engines.api import DEFAULT  # noqa: E402
from nstcam.engines.ort import OnnxStyleEngine, discover, export_quantization, pad_frame  # noqa: E402
from nstcam.registry import bundled_styles_dir  # noqa: E402

BUNDLED = sorted(bundled_styles_dir().glob("*-light.pt"))
pytestmark = pytest.mark.skipif(not BUNDLED, reason="no bundled light style")
PARITY_DB = 35.0
WAIT = 10.0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


@pytest.fixture(scope="module")
def styles_dir(tmp_path_factory) -> Path:
    """A writable folder holding one bundled light style and its fp32 and int8 exports."""
    folder = tmp_path_factory.mktemp("styles")
    style = Path(shutil.copy(BUNDLED[0], folder))
    onnx_export.ensure_onnx(style)
    onnx_export.ensure_onnx(style, "int8", calibration_frames())
    return folder


@pytest.fixture(scope="module")
def style_pt(styles_dir) -> Path:
    return next(styles_dir.glob("*.pt"))


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return [DemoSource(640, 480).frame_at(i * 17 + 3) for i in range(3)]


def test_export_lands_beside_the_style_with_its_metadata(styles_dir, style_pt):
    fp32 = style_pt.with_suffix(".onnx")
    assert fp32.is_file() and style_pt.with_name(style_pt.stem + ".int8.onnx").is_file()
    meta = onnx_export.read_metadata(fp32)
    assert meta["format"] == "nstcam-style-onnx" and meta["variant"] == "light"
    assert meta["source_sha256"] == onnx_export.file_sha256(style_pt)
    assert onnx_export.is_current(fp32, style_pt)
    before = fp32.stat().st_mtime_ns
    assert onnx_export.ensure_onnx(style_pt) == fp32 and fp32.stat().st_mtime_ns == before  # reused
    assert not [p for p in styles_dir.iterdir() if p.name.startswith(".") or "tmp" in p.name]


def test_parity_with_torch_fp32_at_35_db_or_better(styles_dir, style_pt, frames):
    from nstcam.engines.torch_engine import StyleEngine
    from trainer.stylefile import load_style

    torch_engine = StyleEngine({"s": load_style(style_pt)}, device="cpu", size=240, precision="fp32")
    ort_engine = OnnxStyleEngine({"s": style_pt.with_suffix(".onnx")}, device="cpu", size=240, threads=1)
    for frame in frames:
        for size in (240, None, 250):  # 250: a short side that is no multiple of 4 (padding path)
            ref = torch_engine.stylize(frame, size=size)
            out = ort_engine.stylize(frame, size=size)
            assert out.shape == ref.shape and out.dtype == np.uint8
            assert psnr(out, ref) >= PARITY_DB, (size, psnr(out, ref))


def test_int8_export_stays_recognisable(styles_dir, style_pt, frames):
    fp32 = OnnxStyleEngine({"s": style_pt.with_suffix(".onnx")}, device="cpu", size=240, threads=1)
    int8 = OnnxStyleEngine({"s": style_pt.with_name(style_pt.stem + ".int8.onnx")}, device="cpu", size=240, threads=1)
    assert int8.precision == "int8" and fp32.precision == "fp32"
    values = [psnr(int8.stylize(f), fp32.stylize(f)) for f in frames]
    assert min(values) >= 30.0 and float(np.median(values)) >= 35.0, values  # the auto choice's gate


def test_int8_weights_cannot_saturate_avx2_kernels(styles_dir, style_pt):
    """On AVX2 without VNNI, ONNX Runtime sums two uint8 x int8 products in int16 (VPMADDUBSW):
    2 x 255 x |w| must stay within 32767, so |w| <= 64. This CPU (VNNI) cannot show the
    saturation, so the export is checked for the condition that rules it out everywhere."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(style_pt.with_name(style_pt.stem + ".int8.onnx")))
    weights = [numpy_helper.to_array(t) for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert weights and max(int(np.abs(w.astype(np.int32)).max()) for w in weights) <= 64
    assert 2 * 255 * 64 <= np.iinfo(np.int16).max


def test_int8_export_pads_on_uint8(styles_dir, style_pt):
    """Every reflection pad reads the quantized tensor (nstcam.engines.int8_graph), none a float
    one dequantized for it; the PSNR test above holds for this graph."""
    import onnx

    model = onnx.load(str(style_pt.with_name(style_pt.stem + ".int8.onnx")))
    producer = {out: node.op_type for node in model.graph.node for out in node.output}
    pads = [node for node in model.graph.node if node.op_type == "Pad"]
    assert pads and all(producer.get(pad.input[0]) == "QuantizeLinear" for pad in pads)


def test_engine_interface_matches_style_engine(styles_dir, style_pt):
    notices: list[str] = []
    engine = OnnxStyleEngine({"a": style_pt.with_suffix(".onnx"), "b": style_pt.with_suffix(".onnx")},
                             device="cpu", size=120, threads=1)
    engine.on_notice = notices.append
    assert engine.style == "a" and engine.style_names == ["a", "b"]
    engine.set_style("b")
    assert engine.style == "b"
    with pytest.raises(KeyError, match="unknown style 'c'"):
        engine.set_style("c")
    assert engine.device.type == "cpu" and str(engine.device) == "cpu"
    assert "ONNX Runtime" in engine.describe() and "fp32" in engine.describe()
    assert engine.output_size(640, 480) == engine.output_size(640, 480, DEFAULT) == (160, 120)
    engine.warmup(64, 48)
    assert engine.stats.frames == 0
    out = engine.stylize(np.zeros((48, 64, 3), np.uint8))
    assert out.shape == (120, 160, 3) and out.flags.c_contiguous
    assert engine.stats.frames == 1 and engine.stats.latency_ms > 0
    engine.size = None
    assert engine.stylize(np.zeros((10, 14, 3), np.uint8)).shape == (10, 14, 3)  # below MIN_SIDE
    with pytest.raises(ValueError, match="BGR uint8"):
        engine.stylize(np.zeros((10, 14), np.uint8))
    with pytest.raises(ValueError, match="no CUDA execution provider"):
        OnnxStyleEngine({"a": style_pt.with_suffix(".onnx")}, device="cuda")
    assert notices == []


def test_pad_frame_matches_the_networks_own_padding():
    frame = np.arange(5 * 6 * 3, dtype=np.uint8).reshape(5, 6, 3)
    padded, (h, w) = pad_frame(frame)
    assert (h, w) == (5, 6) and padded.shape == (8, 8, 3)
    assert (padded[:5, :6] == frame).all() and (padded[7, :6] == frame[4]).all() and (padded[:5, 7] == frame[:, 5]).all()
    same = np.zeros((8, 12, 3), np.uint8)
    assert pad_frame(same)[0] is same


def test_discover_reads_exports_and_reports_bad_files(styles_dir, tmp_path):
    for p in styles_dir.glob("*.onnx"):
        shutil.copy(p, tmp_path)
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    styles, errors = discover([tmp_path, tmp_path / "missing"])
    (name, style), = styles.items()
    assert style.path.suffixes == [".onnx"] and style.variant == "light" and " — " in style.label
    assert [p.name for p, _ in errors] == ["broken.onnx"] and "not an nstcam style export (unreadable" in errors[0][1]
    int8, _ = discover([tmp_path], quantization="int8")
    assert export_quantization(int8[name].path) == "int8"


def test_unwritable_folder_falls_back_to_cache_path(style_pt, tmp_path, monkeypatch):
    monkeypatch.delenv("NSTCAM_CACHE_DIR")  # the tests' private cache: here, the platform's own path
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(onnx_export, "_writable", lambda folder: False)
    target = onnx_export.onnx_path(style_pt, "int8")
    digest = onnx_export.file_sha256(style_pt)
    assert target == tmp_path / "cache" / "nstcam" / "onnx" / f"{style_pt.stem}-{digest[:12]}.int8.onnx"


def test_stale_export_is_redone(styles_dir, tmp_path):
    style = Path(shutil.copy(next(styles_dir.glob("*.pt")), tmp_path))
    stale = style.with_suffix(".onnx")
    shutil.copy(styles_dir / stale.name, stale)
    assert onnx_export.is_current(stale, style)
    with open(style, "ab") as f:  # a retrained style: the file's bytes changed
        f.write(b"\0")
    assert not onnx_export.is_current(stale, style)


def test_export_of_a_bad_style_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(onnx_export.ExportError, match="bad.pt"):
        onnx_export.export_style(bad)
    assert not list(tmp_path.glob("*.onnx"))


@pytest.mark.slow
def test_running_exported_styles_imports_no_torch(styles_dir):
    code = (
        "import sys\n"
        "sys.modules['torch'] = None  # any import of torch now fails\n"
        "import numpy as np\n"
        "from nstcam.engines.ort import engine_from_dirs\n"
        f"engine, styles = engine_from_dirs([{str(styles_dir)!r}], device='cpu', size=64, threads=1)\n"
        "out = engine.stylize(np.zeros((48, 64, 3), np.uint8))\n"
        "print(out.shape, sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'trainer', 'PySide6')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(64, 86, 3) ['torch']"  # only the None placeholder


def test_export_model_of_an_unsaved_model_runs(style_pt, tmp_path):
    from trainer.stylefile import load_style

    model = load_style(style_pt)
    model.meta = {}  # e.g. a benchmark's randomly initialised network: no name, no file
    path = onnx_export.export_model(model, tmp_path / "bench-net.int8.onnx", "int8", calibration_frames())
    engine = OnnxStyleEngine({"x": path}, device="cpu", size=64, threads=1)
    assert engine.precision == "int8" and onnx_export.read_metadata(path)["name"] == "bench"
    assert engine.stylize(np.zeros((48, 64, 3), np.uint8)).shape == (64, 86, 3)


def test_a_style_session_is_made_when_the_style_first_runs(styles_dir, tmp_path, monkeypatch):
    """A launch waits for one session, not one per style; switching makes the next one."""
    from nstcam.engines import ort

    (first,) = (p for p in styles_dir.glob("*.onnx") if export_quantization(p) == "fp32")
    exports = [first, Path(shutil.copy(first, tmp_path / "second.onnx"))]
    opened: list[Path] = []
    real = ort.open_session
    monkeypatch.setattr(ort, "open_session", lambda path, *a, **k: opened.append(Path(path)) or real(path, *a, **k))
    engine = OnnxStyleEngine({p.stem: p for p in exports}, device="cpu", size=32, threads=1)
    assert opened == [exports[0]]
    frame = np.zeros((48, 64, 3), np.uint8)
    engine.stylize(frame)
    engine.set_style(exports[1].stem)
    assert opened == [exports[0]] and engine.stylize(frame).shape == (32, 42, 3)
    assert opened == exports


def test_only_the_live_stream_tunes_the_thread_count(style_pt, monkeypatch):
    """Thumbnails and snapshots (other sizes) are other work: timing them in a trial once moved the
    window to one thread."""
    engine = OnnxStyleEngine({"s": style_pt.with_suffix(".onnx")}, device="cpu", size=48, threads=2)
    timed: list[float] = []
    monkeypatch.setattr(engine._tuner, "record", timed.append)
    frame = np.zeros((48, 64, 3), np.uint8)
    for size in (DEFAULT, 24, None, DEFAULT):
        engine.stylize(frame, size=size)
    assert len(timed) == 2
    assert engine.stats.frames == 2  # nor do they count as frames of the stream (the status line's rate)


def test_lanes_run_live_frames_at_once_on_a_share_of_the_threads(style_pt, monkeypatch):
    """Two one-thread calls at once stylized 1.4-1.6x the frames of one two-thread call on 2 cores."""
    from nstcam.engines import ort

    barrier = threading.Barrier(2, timeout=WAIT)  # two live frames meet here only if they run at once
    opened: list[int] = []

    class Meeting:
        def __init__(self, session, threads: int) -> None:
            self.session, self.threads = session, threads

        def get_inputs(self):
            return self.session.get_inputs()

        def run(self, outputs, feeds):
            if self.threads == 1:
                barrier.wait()
            return self.session.run(outputs, feeds)

    def opening(path, device, threads=None):
        opened.append(threads)
        return Meeting(real_open(path, device, threads), threads)

    real_open = ort.open_session
    monkeypatch.setattr(ort, "open_session", opening)
    engine = OnnxStyleEngine({"s": style_pt.with_suffix(".onnx")}, device="cpu", size=48, threads=2)
    assert engine.lanes == 2
    frame = np.zeros((48, 64, 3), np.uint8)
    alone = engine.stylize(frame)
    engine.use_lanes(2)
    assert "2 frames at once" in engine.describe()
    results: list[np.ndarray] = []
    callers = [threading.Thread(target=lambda: results.append(engine.stylize(frame))) for _ in range(2)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(WAIT)
    assert len(results) == 2 and all(np.array_equal(r, alone) for r in results)
    assert opened == [2, 1]  # the live frames ran on one thread each, in one shared session
    stats = engine.stats  # two frames per call time: the look bar's "fps at this size"
    assert stats.max_fps == pytest.approx(2e3 / stats.latency_ms)
    engine.stylize(frame, size=24)  # other work (a thumbnail) runs on every thread, alone
    assert opened == [2, 1]


def test_an_engine_on_one_thread_has_one_lane(style_pt):
    engine = OnnxStyleEngine({"s": style_pt.with_suffix(".onnx")}, device="cpu", size=48, threads=1)
    assert engine.lanes == 1
    engine.use_lanes(2)
    assert "at once" not in engine.describe()


def test_an_int8_export_leaves_the_fp32_export_a_torch_free_launch_needs(tmp_path, frames):
    """The window that chose int8 exports every style in int8; its float graph is kept as the fp32
    export (made once), so the next launch starts without torch."""
    alone, direct = tmp_path / "alone", tmp_path / "direct"
    alone.mkdir(), direct.mkdir()
    style = Path(shutil.copy(BUNDLED[0], alone))
    onnx_export.ensure_onnx(style, "int8", calibration_frames())
    fp32 = style.with_suffix(".onnx")
    assert onnx_export.export_state(style)[2]
    reference = onnx_export.ensure_onnx(Path(shutil.copy(BUNDLED[0], direct)))
    assert onnx_export.read_metadata(fp32) == onnx_export.read_metadata(reference)
    kept, made = (OnnxStyleEngine({"s": p}, device="cpu", size=240, threads=1) for p in (fp32, reference))
    assert np.array_equal(kept.stylize(frames[0]), made.stylize(frames[0]))

    written = fp32.stat().st_mtime_ns
    style.with_name(style.stem + ".int8.onnx").unlink()
    onnx_export.ensure_onnx(style, "int8", calibration_frames())
    assert fp32.stat().st_mtime_ns == written  # current: not written again


def test_a_late_export_is_made_once_on_its_first_frame_and_a_failure_is_not_tried_again(styles_dir, tmp_path):
    """A launch exports the style it shows; the others wait for their first frame (the
    thumbnails' or the user's), each made once even when two lanes ask for it at once."""
    from nstcam.engines.ort import LateExport

    (fp32,) = (p for p in styles_dir.glob("*.onnx") if export_quantization(p) == "fp32")
    made: list[str] = []

    def make() -> None:
        made.append("late")
        time.sleep(0.2)  # stands in for the export's seconds, while the other lane asks too
        shutil.copy(fp32, tmp_path / "late.onnx")

    def broken() -> None:
        made.append("broken")
        raise onnx_export.ExportError("bad style file")

    engine = OnnxStyleEngine({"late": LateExport("late", tmp_path / "late.onnx", make=make), "now": fp32,
                              "broken": LateExport("broken", tmp_path / "broken.onnx", make=broken)},
                             device="cpu", size=32, threads=1)
    assert made == [] and engine.style == "now"  # it starts on a style it has
    frame = np.zeros((48, 64, 3), np.uint8)
    both = threading.Barrier(2)

    def late_frame(_: int) -> np.ndarray:
        both.wait()
        return engine.stylize(frame, style="late")

    with ThreadPoolExecutor(2) as pool:
        assert [out.shape for out in pool.map(late_frame, range(2))] == [(32, 42, 3)] * 2
    assert made == ["late"]
    for _ in range(2):
        with pytest.raises(onnx_export.ExportError, match="bad style file"):
            engine.stylize(frame, style="broken")
    assert made == ["late", "broken"] and engine.stylize(frame).shape == (32, 42, 3)


@pytest.mark.slow
def test_a_launch_exports_its_own_style_and_each_other_one_on_its_first_frame(tmp_path, frames):
    """A fresh clone's first launch exported all six styles in int8 before its first frame
    (11 s of its 28.5 s); now only the one it shows."""
    from nstcam.engines.ort import OrtDevice
    from nstcam.launch import build_engine
    from nstcam.registry import StyleRegistry

    first, second = (Path(shutil.copy(pt, tmp_path)) for pt in BUNDLED[:2])
    names = [pt.stem.split("-")[0] for pt in (first, second)]
    engine = build_engine(StyleRegistry.discover([tmp_path]), OrtDevice("cpu"), 240, names[1], "fp32", "onnxruntime",
                          threads=1)

    def exports() -> list[str]:
        return sorted(p.name for p in tmp_path.glob("*.onnx"))

    assert exports() == [second.with_suffix(".onnx").name] and engine.style == names[1]
    assert engine.stylize(frames[0], style=names[0]).shape == (240, 320, 3)
    assert exports() == sorted(pt.with_suffix(".onnx").name for pt in (first, second))


@pytest.mark.slow
def test_a_late_export_runs_in_its_own_process_which_the_app_can_stop(tmp_path):
    """Exporting in the app's process took the GIL from the live view for seconds. Closing the
    window ends an export still running, leaving no partial file, and refuses the ones asked for
    before (one queued behind it must not start the process again); a later one starts anew."""
    import multiprocessing

    from nstcam.engines.onnx_export import ExportError, is_current, late_onnx
    from nstcam.engines.quick_start import stop_exports

    first, second = (Path(shutil.copy(pt, tmp_path)) for pt in BUNDLED[:2])
    errors: list[BaseException] = []
    running = threading.Thread(target=_catch, args=(late_onnx(second).make, errors))
    queued = threading.Thread(target=_catch, args=(late_onnx(first).make, errors))
    running.start()

    def exporting() -> bool:
        return "nstcam-late-export" in [child.name for child in multiprocessing.active_children()]

    deadline = time.monotonic() + 30
    while not exporting() and running.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)  # the export's process is being started on the other thread
    assert exporting()
    queued.start()
    stop_exports()  # the window closes while the export runs
    running.join(30)
    queued.join(30)
    assert len(errors) == 2 and all(isinstance(exc, ExportError) for exc in errors)
    assert any("the window that asked for it closed" in str(exc) for exc in errors)
    assert not exporting()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(pt.name for pt in (first, second))
    late = late_onnx(first)
    assert late.make() == first.with_suffix(".onnx") and is_current(late.path, first)  # a new process


def _catch(call, errors: list[BaseException]) -> None:
    try:
        call()
    except BaseException as exc:
        errors.append(exc)
