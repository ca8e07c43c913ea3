"""The benchmark harnesses run end to end at the smallest settings and write the JSON they promise.

Tiny networks, 32x24 frames, one or two frames and one training step: seconds on one CPU thread.
Nothing here checks speed, only that every figure is produced and sane.
"""
from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from nstcam.measure import bench as nbench
from nstcam.measure.bench.runners import ARCH_CANDIDATES, LIGHT_CONFIG
from nstcam.engines.torch_engine import default_precision
from trainer import bench as tbench
from trainer import benchkit
from trainer.transformer import TransformerConfig

TINY_ARCH = "width=4,res_blocks=1,outer_kernel=3"


@pytest.fixture(autouse=True)
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_parse_arch_and_sizes() -> None:
    assert benchkit.parse_arch("width=16,res_blocks=4,outer_kernel=5,separable=1") == TransformerConfig(16, 4, 5, True)
    assert benchkit.parse_arch("w=24,sep") == TransformerConfig(width=24, separable=True)
    assert nbench.parse_sizes("320x240, 640x480") == [(320, 240), (640, 480)]
    with pytest.raises(Exception):
        benchkit.parse_arch("depth=3")
    assert benchkit.arch_label(TransformerConfig(16, 4, 5, True)) == "w16/r4/k5/sep"


def test_psnr() -> None:
    a = np.zeros((4, 4, 3), np.uint8)
    assert nbench.psnr(a, a) == nbench.PSNR_CAP
    b = a.copy()
    b[0, 0, 0] = 255
    assert nbench.psnr(a, b) == pytest.approx(10 * math.log10(a.size))  # MSE = 255^2 / size


def test_nstcam_bench_writes_engine_naive_pipeline_and_parity(tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.json"
    rc = nbench.main([
        "--device", "cpu", "--arch", TINY_ARCH, "--sizes", "32x24", "--frames", "2", "--repeats", "1",
        "--warmup", "0", "--threads", "1", "--pipeline-seconds", "0.3", "--pipeline-warmup", "0.2",
        "--parity-frames", "1", "--json", str(out),
    ])
    assert rc == 0
    data = json.loads(out.read_text())
    assert {"meta", "models", "engine", "pipeline", "parity", "errors"} <= set(data)
    assert data["errors"] == []
    assert data["models"]["cpu"]["arch"] == "w4/r1/k3"

    engine = data["engine"]
    assert {r["precision"] for r in engine} >= {"fp32"}
    for row in engine:
        assert row["size"] == "32x24" and row["device"] == "cpu"
        for key in ("engine_fps", "engine_p50_ms", "engine_p95_ms", "naive_fps", "naive_p50_ms",
                    "speedup_vs_naive", "p50_latency_ratio_vs_naive"):
            assert _positive(row[key]), key

    (pipe,) = data["pipeline"]
    assert pipe["precision"] == default_precision(torch.device("cpu"))  # the app's own
    for key in ("pipeline_fps", "engine_fps", "pipeline_vs_engine", "latency_p50_ms", "latency_p95_ms",
                "first_half_p95_ms", "second_half_p95_ms", "capture_fps", "engine_thread_fps",
                "pipeline_vs_engine_thread"):
        assert _positive(pipe[key]), key
    assert pipe["dropped"] >= 0 and pipe["errors"] == 0

    variants = {r["variant"] for r in data["parity"]}
    assert {"engine fp32", "naive fp32"} <= variants
    for row in data["parity"]:
        assert _positive(row["psnr_db"]) and row["psnr_db"] <= nbench.PSNR_CAP
    fp32 = next(r for r in data["parity"] if r["variant"] == "engine fp32")
    assert fp32["psnr_db"] >= 40  # the engine's fp32 path is the reference computation

    printed = capsys.readouterr().out
    assert "naive" in printed and "Pipeline" in printed and "PSNR" in printed


def test_nstcam_bench_compare_archs(tmp_path: Path) -> None:
    out = tmp_path / "archs.json"
    rc = nbench.main([
        "--compare-archs", "--arch", TINY_ARCH, "--arch", TINY_ARCH + ",separable=1", "--sizes", "32x24",
        "--frames", "1", "--repeats", "1", "--warmup", "0", "--threads", "1", "--cpu-bf16", "off",
        "--json", str(out),
    ])
    assert rc == 0
    rows = json.loads(out.read_text())["compare_archs"]
    assert [r["arch"] for r in rows] == ["w4/r1/k3", "w4/r1/k3/sep"]
    for row in rows:
        assert _positive(row["ms_per_frame"]) and _positive(row["fps"]) and _positive(row["gmacs"])
        assert row["params"] > 0
    assert rows[1]["gmacs"] < rows[0]["gmacs"]


def test_compare_archs_costs_are_per_round_ratios_to_the_first_arch(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # the emulation's settings are recorded
    out = tmp_path / "archs.json"
    rc = nbench.main([
        "--compare-archs", "--arch", TINY_ARCH, "--arch", "width=8,res_blocks=2,outer_kernel=5",
        "--sizes", "32x24", "--frames", "1", "--repeats", "3", "--warmup", "0", "--threads", "1",
        "--cpu-bf16", "off", "--json", str(out),
    ])
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["meta"]["isa_env"].get("ONEDNN_MAX_CPU_ISA") == "AVX2"
    ref, other = data["compare_archs"]
    assert ref["reference"] == other["reference"] == "w4/r1/k3"
    assert ref["cost_vs_reference"] == ref["cost_vs_reference_min"] == ref["cost_vs_reference_max"] == 1.0
    assert len(ref["runs_fps"]) == len(other["runs_fps"]) == 3
    # runs_fps are rounded to 3 decimals in the JSON: compare loosely
    per_round = sorted(r / o for r, o in zip(ref["runs_fps"], other["runs_fps"]))
    assert other["cost_vs_reference_min"] == pytest.approx(per_round[0], rel=1e-2)
    assert other["cost_vs_reference"] == pytest.approx(per_round[1], rel=1e-2)
    assert other["cost_vs_reference_max"] == pytest.approx(per_round[2], rel=1e-2)
    assert ref["cpu_cost_vs_reference"] == 1.0 and _positive(other["cpu_ms_per_frame"])
    assert other["cpu_cost_vs_reference_min"] <= other["cpu_cost_vs_reference"] <= other["cpu_cost_vs_reference_max"]


def test_compare_archs_default_candidates_start_with_the_bundled_light_network() -> None:
    manifest = json.loads((Path(__file__).resolve().parents[1] / "styles" / "manifest.json").read_text())
    shipped = {tuple(sorted(s["architecture"].items())) for s in manifest["styles"]}
    assert shipped == {tuple(sorted(ARCH_CANDIDATES[0].to_dict().items()))}
    assert LIGHT_CONFIG == ARCH_CANDIDATES[0]


def test_trainer_bench_writes_gatys_and_training_with_ratios(tmp_path: Path, capsys) -> None:
    out = tmp_path / "train.json"
    rc = tbench.main([
        "--device", "cpu", "--size", "32", "--batch-size", "1", "--steps", "1", "--repeats", "1",
        "--warmup", "0", "--threads", "1", "--arch", TINY_ARCH, "--amp", "off", "--json", str(out),
    ])
    assert rc == 0
    data = json.loads(out.read_text())
    for kind in ("gatys", "train"):
        rows = data[kind]
        assert [r["baseline"] for r in rows].count(True) == 1
        assert {r["loss_net"] for r in rows} == {"vgg16", "vgg19", "efficientnet-lite0"}
        for row in rows:
            assert _positive(row["steps_per_s"]) and _positive(row["ratio_vs_baseline"])
        base = next(r for r in rows if r["baseline"])
        assert base["ratio_vs_baseline"] == pytest.approx(1.0)
    for row in data["train"]:
        assert _positive(row["images_per_s"])
        # the timed step is trainer.fast's default recipe, stability loss included
        assert row["baseline"] or row["variant"].endswith("+stability")
    assert "x baseline" in capsys.readouterr().out


@pytest.mark.gpu
def test_nstcam_bench_on_cuda_times_fp16_and_fp32(tmp_path: Path) -> None:
    out = tmp_path / "cuda.json"
    rc = nbench.main([
        "--device", "cuda", "--arch", TINY_ARCH, "--sizes", "64x48", "--frames", "3", "--repeats", "1",
        "--warmup", "1", "--pipeline-seconds", "0.3", "--pipeline-warmup", "0.2", "--parity-frames", "1",
        "--json", str(out),
    ])
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["errors"] == []
    assert {r["precision"] for r in data["engine"]} == {"fp16", "fp32"}
    assert all(_positive(r["speedup_vs_naive"]) for r in data["engine"])
    assert data["pipeline"][0]["precision"] == "fp16" and _positive(data["pipeline"][0]["pipeline_fps"])
    fp16 = next(r for r in data["parity"] if r["variant"] == "engine fp16")
    assert fp16["psnr_db"] > 30


@pytest.mark.gpu
def test_trainer_bench_on_cuda_has_the_amp_channels_last_variant(tmp_path: Path) -> None:
    out = tmp_path / "cuda_train.json"
    rc = tbench.main([
        "--device", "cuda", "--size", "32", "--batch-size", "2", "--steps", "1", "--repeats", "1",
        "--warmup", "1", "--arch", TINY_ARCH, "--loss-nets", "efficientnet-lite0", "--json", str(out),
    ])
    assert rc == 0
    rows = json.loads(out.read_text())["train"]
    amp = [r for r in rows if not r["baseline"] and r["precision"] != "fp32"]
    assert amp and all(r["channels_last"] for r in amp)
    assert all(_positive(r["images_per_s"]) for r in rows)


def test_bench_app_times_an_engine_with_lanes_as_the_app_runs_it() -> None:
    """ONNX Runtime on a CPU keeps frames in flight on two lanes in the window and render: its
    "alone" figure, the ceiling the window is held to, must too, and like render it must not wait
    for each pair (a lane done first idled until the pair's other frame was collected)."""
    from nstcam.measure.bench_app import engine_fps

    class Streamed:
        """Each timed frame waits (up to 1 s) until the next frame has started on the other lane."""

        lanes = 2

        def __init__(self) -> None:
            self.lanes_used = 0
            self.started: list[threading.Event] = []
            self.saw_next: dict[int, bool] = {}
            self.lock = threading.Lock()

        def use_lanes(self, lanes: int) -> None:
            self.lanes_used = lanes

        def stylize(self, frame: np.ndarray) -> np.ndarray:
            with self.lock:
                k = len(self.started)
                self.started.append(threading.Event())
                if k:
                    self.started[k - 1].set()  # frame k - 1's successor has started
            if k >= 3:  # the warm-up frames run one by one on this thread
                seen = self.started[k].wait(timeout=1.0)
                with self.lock:
                    self.saw_next[k] = seen
            return frame

    engine = Streamed()
    assert engine_fps(engine, 0.2) > 0
    timed = sorted(engine.saw_next)
    assert engine.lanes_used == 2 and len(timed) >= 4
    assert all(engine.saw_next[k] for k in timed[:-1])  # only the last frame had no successor


def test_bench_app_conditions_hold_each_window_to_the_engine_and_the_camera_of_its_round() -> None:
    """The VM's speed drifts between rounds, so each ratio is taken within its round; a window
    fed faster than the engine runs is held to the engine, one fed slower to its camera."""
    from nstcam.measure.bench_app import summarise_conditions

    def row(engine: float, fresh30: float, fresh60: float, shown60: float) -> dict[str, float]:
        return {"engine onnxruntime:int8": engine, "fastest engine": engine, "render_fps": 0.9 * engine,
                "window default stylize_fps": fresh30, "window default display_fps": 30.0,
                "window default capture_fps": 30.0, "window 60 fps camera stylize_fps": fresh60,
                "window 60 fps camera display_fps": shown60, "window 60 fps camera capture_fps": 60.0}

    # Rounds at three speeds. The 60 fps camera's own ratios are 0.9, 0.9 and 0.6; the medians
    # of the figures (21 fresh of 35) would give 0.6.
    runs = [row(50.0, 30.0, 45.0, 57.0), row(20.0, 18.0, 18.0, 60.0), row(35.0, 29.0, 21.0, 58.8)]
    out = summarise_conditions({"idle": runs, "AVX2": runs})["idle"]
    assert out["window 60 fps camera vs fastest engine"] == 0.9
    assert out["window default vs fastest engine"] == 0.83  # 30/50, 18/20, 29/35
    assert out["window default vs camera or engine"] == 0.97  # 30/30, 18/20, 29/30
    assert out["window 60 fps camera shown vs camera"] == 0.98
    assert out["render vs fastest engine"] == 0.9
    assert out["window 60 fps camera stylize_fps vs idle"] == 1.0 and out["rounds"] == 3


def test_bench_app_windows_start_from_the_default_settings(monkeypatch) -> None:
    """The window remembers its toggles: each measured run gets an empty settings folder of its
    own, so neither the user's settings nor the previous run's reach it."""
    from nstcam.measure import bench_app

    seen: list[tuple[Path, list[Path]]] = []

    def launch(*args: str, env: dict[str, str], timeout: float = 900) -> tuple[float, str]:
        folder = Path(env["NSTCAM_CONFIG_DIR"])
        seen.append((folder, list(folder.iterdir())))
        (folder / "nstcam.ini").write_text("[General]\ninbetween=false\n")  # what a run leaves
        return 1.0, 'BENCHMARK_JSON {"stylize_fps": 9, "display_fps": 30, "capture_fps": 30}\n'

    monkeypatch.setattr(bench_app, "nstcam", launch)
    for _ in range(2):
        assert bench_app.window(240, "on", 1.0, "monet")["display_fps"] == 30
    (first, first_files), (second, second_files) = seen
    assert first != second and first_files == second_files == []
    assert not first.exists() and not second.exists()
