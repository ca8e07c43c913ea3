"""StyleEngine on CPU (always) and CUDA (marked gpu: skipped without a CUDA device)."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from nstcam.engines.torch_engine import MIN_SIZE, StyleEngine, default_precision, is_cuda_fault
from nstcam.engines.api import processing_size
from nstcam_fixtures import video_frame


CPU_PRECISION = default_precision(torch.device("cpu"))  # bf16 on CPUs with native bf16, else fp32


def frame(w: int = 96, h: int = 64) -> np.ndarray:
    return video_frame(3, (w, h))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture
def engine(style_models) -> StyleEngine:
    return StyleEngine(style_models, device="cpu", size=48)


def test_processing_size_keeps_aspect_and_even_sides() -> None:
    assert processing_size(640, 480, 240) == (320, 240)
    assert processing_size(1280, 720, 480) == (854, 480)
    assert processing_size(720, 1280, 480) == (480, 854)
    assert processing_size(101, 77, None) == (101, 77)
    w, h = processing_size(333, 211, 101)
    assert w % 2 == 0 and h % 2 == 0


def test_output_size_dtype_and_aspect(engine: StyleEngine) -> None:
    out = engine.stylize(frame(96, 64))
    assert out.dtype == np.uint8 and out.shape == (48, 72, 3)
    assert engine.stylize(frame(64, 96)).shape == (72, 48, 3)  # portrait
    assert engine.stylize(frame(96, 64), size=32).shape == (32, 48, 3)
    assert engine.stylize(frame(90, 60), size=None).shape == (60, 90, 3)  # full resolution
    assert engine.output_size(96, 64) == (72, 48)


def test_output_differs_from_input_and_between_styles(engine: StyleEngine) -> None:
    src = frame(96, 64)
    a = engine.stylize(src, size=None)
    b = engine.stylize(src, style="beta", size=None)
    rgb = src[..., ::-1].astype(int)
    assert np.abs(a.astype(int) - rgb).mean() > 5
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 5
    assert engine.style == "alpha"  # the per-call style does not switch the engine
    engine.set_style("beta")
    assert engine.style == "beta"
    assert np.array_equal(engine.stylize(src, size=None), b)


def test_unknown_style_is_a_key_error_listing_the_names(engine: StyleEngine) -> None:
    with pytest.raises(KeyError, match="alpha, beta"):
        engine.set_style("monet")
    with pytest.raises(KeyError, match="monet"):
        engine.stylize(frame(), style="monet")
    assert engine.style_names == ["alpha", "beta"]


def test_stats_and_description(engine: StyleEngine) -> None:
    assert engine.stats.frames == 0
    for _ in range(4):
        engine.stylize(frame())
    stats = engine.stats
    assert stats.frames == 4
    assert stats.latency_ms > 0 and stats.fps > 0 and stats.max_fps > 0
    assert engine.describe() == f"cpu {CPU_PRECISION}"
    assert engine.device == torch.device("cpu") and engine.precision == CPU_PRECISION
    assert engine.channels_last in (True, False)  # decided by measuring on the first frame


def test_only_the_live_stream_tunes_the_thread_count(engine: StyleEngine, monkeypatch) -> None:
    """Thumbnails and snapshots (other sizes) are other work, timed apart from the live stream."""
    timed: list[float] = []
    monkeypatch.setattr(engine._tuner, "record", timed.append)
    for size in (48, 24, None):  # an explicit size, even the engine's own, is a one-off request
        engine.stylize(frame(), size=size)
    engine.stylize(frame())
    assert len(timed) == 1
    assert engine.stats.frames == 1  # nor do they count as frames of the stream (the status line's rate)


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_bf16_only_on_cpus_with_native_bf16(style_models, monkeypatch, native) -> None:
    import nstcam.engines.torch_engine as engine_module

    monkeypatch.setattr(engine_module, "cpu_bf16_supported", lambda: native)
    engine = StyleEngine(style_models, device="cpu", size=48)
    assert engine.precision == ("bf16" if native else "fp32")
    assert all(p.dtype == (torch.bfloat16 if native else torch.float32) for p in engine._nets["alpha"].parameters())
    out = engine.stylize(frame())
    assert out.dtype == np.uint8 and out.shape == (48, 72, 3)


def test_bf16_output_matches_fp32(style_models) -> None:
    src = frame(160, 120)
    full = StyleEngine(style_models, device="cpu", size=None, precision="fp32")
    half = StyleEngine(style_models, device="cpu", size=None, precision="bf16")
    assert (full.precision, half.precision) == ("fp32", "bf16")
    a, b = full.stylize(src), half.stylize(src)
    assert not np.array_equal(a, b)  # really ran in bf16
    assert psnr(a, b) >= 35.0


def test_precision_errors_name_the_choices(style_models) -> None:
    with pytest.raises(ValueError, match="unknown precision 'fp8'; choose one of auto, fp32, fp16, bf16"):
        StyleEngine(style_models, device="cpu", precision="fp8")
    with pytest.raises(ValueError, match="precision fp16 is not offered on cpu; use auto or fp32"):
        StyleEngine(style_models, device="cpu", precision="fp16")


def test_channels_last_does_not_change_the_result(style_models) -> None:
    src = frame()
    a = StyleEngine(style_models, device="cpu", size=48, channels_last=True).stylize(src)
    b = StyleEngine(style_models, device="cpu", size=48, channels_last=False).stylize(src)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_bad_frames_are_rejected(engine: StyleEngine) -> None:
    with pytest.raises(ValueError, match="BGR uint8"):
        engine.stylize(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="BGR uint8"):
        engine.stylize(np.zeros((10, 10, 3), np.float32))


def test_no_models_is_an_error() -> None:
    with pytest.raises(ValueError, match="no styles"):
        StyleEngine({}, device="cpu")


def test_cuda_fault_classification() -> None:
    assert is_cuda_fault(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert is_cuda_fault(RuntimeError("CUDA error: an illegal memory access was encountered"))
    assert is_cuda_fault(RuntimeError("cuDNN error: CUDNN_STATUS_EXECUTION_FAILED"))
    assert not is_cuda_fault(RuntimeError("shape mismatch"))
    assert not is_cuda_fault(ValueError("CUDA"))


def _pretend_cuda(engine: StyleEngine, monkeypatch: pytest.MonkeyPatch, errors: list[BaseException]) -> list[tuple[int, int]]:
    """Make the CPU engine look like a CUDA one whose runs raise `errors` in turn, then work."""
    sizes: list[tuple[int, int]] = []
    run_cpu = engine._run_cpu

    def fake_run_cuda(net, frame_bgr, tw, th):
        sizes.append((tw, th))
        if errors:
            raise errors.pop(0)
        return run_cpu(net, frame_bgr, tw, th, live=True)

    engine._device = torch.device("cuda", 0)
    monkeypatch.setattr(engine, "_run_cuda", fake_run_cuda)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    return sizes


def test_gpu_out_of_memory_lowers_the_size_then_falls_back_to_cpu(style_models, monkeypatch) -> None:
    notices: list[str] = []
    engine = StyleEngine(style_models, device="cpu", size=240, on_notice=notices.append, channels_last=False)
    oom = [torch.OutOfMemoryError("CUDA out of memory") for _ in range(20)]
    sizes = _pretend_cuda(engine, monkeypatch, oom)
    out = engine.stylize(frame(96, 64))  # must not raise
    # Shrunk by 0.75 per fault down to MIN_SIZE, then handed over to the CPU.
    assert [min(s) for s in sizes] == [240, 180, 136]  # x0.75 per fault, not below MIN_SIZE
    assert MIN_SIZE > 0.75 * 135
    assert any("lowering the processing size" in n for n in notices)
    assert f"switched to CPU {CPU_PRECISION}" in notices[-1]
    assert engine.device.type == "cpu" and engine.describe() == f"cpu {CPU_PRECISION}"
    assert out.shape == (240, 360, 3)  # the CPU runs at the requested size again


def test_gpu_out_of_memory_once_keeps_the_lower_size(style_models, monkeypatch) -> None:
    notices: list[str] = []
    engine = StyleEngine(style_models, device="cpu", size=200, on_notice=notices.append, channels_last=False)
    sizes = _pretend_cuda(engine, monkeypatch, [torch.OutOfMemoryError("CUDA out of memory")])
    out = engine.stylize(frame(96, 64))
    assert out.shape == (150, 224, 3) and engine.processing_scale == 0.75
    assert sizes == [(300, 200), (224, 150)]
    assert engine.stylize(frame(96, 64)).shape == (150, 224, 3)  # stays lowered
    assert notices == ["GPU out of memory at 300x200; lowering the processing size to 224x150"]


def test_other_cuda_errors_fall_back_to_cpu_at_once(style_models, monkeypatch) -> None:
    notices: list[str] = []
    engine = StyleEngine(style_models, device="cpu", size=48, on_notice=notices.append)
    sizes = _pretend_cuda(engine, monkeypatch, [RuntimeError("CUDA error: an illegal memory access was encountered")])
    out = engine.stylize(frame(96, 64))
    assert out.shape == (48, 72, 3) and len(sizes) == 1
    assert len(notices) == 1 and "illegal memory access" in notices[0] and "CPU" in notices[0]
    assert engine.device.type == "cpu"


def test_gpu_out_of_memory_while_loading_falls_back_to_cpu(style_models, monkeypatch) -> None:
    import nstcam.engines.torch_engine as engine_module

    real_load = StyleEngine._load

    def load(self, device):
        if device.type == "cuda":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")
        real_load(self, device)

    monkeypatch.setattr(engine_module, "resolve_device", lambda name: torch.device("cuda", 0))
    monkeypatch.setattr(StyleEngine, "_load", load)
    engine = StyleEngine(style_models, device="cuda", size=48)
    assert engine.describe() == f"cpu {CPU_PRECISION}"
    assert len(engine.notices) == 1 and "CUDA out of memory" in engine.notices[0]
    assert engine.stylize(frame()).shape == (48, 72, 3)


def test_non_cuda_errors_propagate(style_models, monkeypatch) -> None:
    engine = StyleEngine(style_models, device="cpu", size=48)
    _pretend_cuda(engine, monkeypatch, [RuntimeError("shape mismatch")])
    with pytest.raises(RuntimeError, match="shape mismatch"):
        engine.stylize(frame())


# ----------------------------------------------------------------------------- CUDA
@pytest.mark.gpu
def test_cuda_engine_matches_cpu(style_models) -> None:
    src = frame(320, 240)
    gpu = StyleEngine(style_models, device="cuda", size=None)
    cpu = StyleEngine(style_models, device="cpu", size=None, precision="fp32")
    assert gpu.precision == "fp16" and gpu.channels_last is True
    assert gpu.describe().startswith("cuda:0 fp16 (")
    a, b = gpu.stylize(src), cpu.stylize(src)
    assert a.shape == b.shape == (240, 320, 3) and a.dtype == np.uint8
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 3  # fp16 vs fp32


@pytest.mark.gpu
def test_cuda_engine_at_forced_fp32(style_models) -> None:
    src = frame(320, 240)
    gpu = StyleEngine(style_models, device="cuda", size=None, precision="fp32")
    cpu = StyleEngine(style_models, device="cpu", size=None, precision="fp32")
    assert gpu.precision == "fp32"
    assert psnr(gpu.stylize(src), cpu.stylize(src)) >= 40.0
    with pytest.raises(ValueError, match="precision bf16 is not offered on cuda"):
        StyleEngine(style_models, device="cuda", precision="bf16")


@pytest.mark.gpu
def test_cuda_engine_resizes_on_the_gpu_and_reuses_buffers(style_models) -> None:
    engine = StyleEngine(style_models, device="cuda", size=240)
    src = frame(640, 480)
    out = engine.stylize(src)
    assert out.shape == (240, 320, 3)
    buffers = engine._buffers
    first_ptr = buffers.in_host.data_ptr()
    out2 = engine.stylize(src)
    assert engine._buffers is buffers and buffers.in_host.data_ptr() == first_ptr  # reused
    assert buffers.in_host.is_pinned() and buffers.out_host.is_pinned()
    assert out2 is not buffers.out_host_np and np.array_equal(out, out2)  # a copy, not the buffer
    engine.stylize(frame(1280, 720))
    assert engine._buffers is not buffers  # new frame size: new buffers
    cpu = StyleEngine(style_models, device="cpu", size=240, precision="fp32").stylize(src)
    assert np.abs(out.astype(int) - cpu.astype(int)).mean() < 4  # GPU area resize ~ cv2.INTER_AREA


@pytest.mark.gpu
def test_cuda_engine_speed_report(style_models) -> None:
    from trainer.stylefile import StyleModel
    from trainer.transformer import TransformerConfig, TransformerNet

    net = TransformerNet(TransformerConfig())
    big = {"johnson": StyleModel(net.config, net.state_dict(), {"name": "johnson"})}
    engine = StyleEngine(big, device="cuda", size=480)
    src = frame(1280, 720)
    for _ in range(5):
        engine.stylize(src)
    t0 = time.perf_counter()
    for _ in range(20):
        engine.stylize(src)
    ms = (time.perf_counter() - t0) / 20 * 1e3
    print(f"\nCUDA {engine.describe()}: {ms:.2f} ms/frame for 720p -> 854x480, width 32")
    assert ms < 100
