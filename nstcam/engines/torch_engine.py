"""The style engine: runs a TransformerNet on camera frames as fast as the device allows.

Every style is built on the device once, up front, so switching style between two frames costs
nothing. On CUDA the nets run in fp16 and channels_last with cuDNN autotuning; the frame travels
as uint8 (a third of the bytes of fp16, a quarter of fp32) through reused pinned buffers and a side
stream, and all conversion (BGR->RGB, scaling to [0, 1], resizing, back to uint8) happens on the
GPU, so the CPU only copies bytes. On CPU the nets run under `torch.inference_mode` in bf16 where
the CPU computes it natively (AVX512-BF16 / AMX: ~1.8x the fp32 frame rate, ~52 dB PSNR to fp32),
else fp32; the frame is shrunk with cv2.INTER_AREA first, and channels_last is used only if it
measures faster on this machine (timed on the first frame, then remembered across launches).

Faults on the GPU never reach the caller: running out of memory lowers the processing size (x0.75
per fault, down to `MIN_SIZE`), then, like any other CUDA error, moves the engine to the CPU;
`on_notice` tells the user each time.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nstcam.engines import memory_formats
from nstcam.engines.api import DEFAULT, PRECISIONS, EngineBase, _Default, processing_size
from nstcam.engines.threads import ThreadTuner, thread_choices
from nstcam.resample import resize_to
from trainer.devices import cpu_bf16_supported, resolve_device
from trainer.stylefile import StyleModel

log = logging.getLogger(__name__)

MIN_SIZE = 128  # short side below which an out-of-memory GPU gives up and hands over to the CPU
SHRINK = 0.75
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def default_precision(device: torch.device) -> str:
    """What "auto" runs on `device`: fp16 on CUDA; bf16 on a CPU with native bf16, else fp32."""
    if device.type == "cuda":
        return "fp16"
    return "bf16" if cpu_bf16_supported() else "fp32"


def is_cuda_fault(exc: BaseException) -> bool:
    """True for the errors the engine recovers from: CUDA OOM and CUDA/cuDNN/cuBLAS runtime errors."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    accel = getattr(torch, "AcceleratorError", None)
    if accel is not None and isinstance(exc, accel):
        return True
    if isinstance(exc, RuntimeError):
        text = str(exc)
        return any(key in text for key in ("CUDA", "cuDNN", "CUDNN", "CUBLAS", "cublas", "out of memory"))
    return False


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc)


class _CudaBuffers:
    """Pinned host buffers and their device twins for one (input shape, output size) pair."""

    def __init__(self, in_shape: tuple[int, ...], out_hw: tuple[int, int], device: torch.device) -> None:
        self.in_shape = in_shape
        self.out_hw = out_hw
        self.in_host = torch.empty(in_shape, dtype=torch.uint8, pin_memory=True)
        self.in_host_np = self.in_host.numpy()
        self.in_dev = torch.empty(in_shape, dtype=torch.uint8, device=device)
        self.out_host = torch.empty((*out_hw, 3), dtype=torch.uint8, pin_memory=True)
        self.out_host_np = self.out_host.numpy()
        # Blocking sync: the waiting thread sleeps instead of spinning a CPU core for the whole frame.
        self.done = torch.cuda.Event(blocking=True)

    def fits(self, in_shape: tuple[int, ...], out_hw: tuple[int, int]) -> bool:
        return self.in_shape == in_shape and self.out_hw == out_hw


class StyleEngine(EngineBase):
    """Stylizes BGR frames into RGB frames with one of several preloaded styles.

    Thread-safe: `stylize` calls are serialised by a lock (one frame at a time is what the device
    does anyway); `set_style` may be called from any thread and takes effect on the next frame.
    `channels_last`: None measures it on CPU (always on for CUDA); True/False forces it.
    `precision`: "auto" is fp16 on CUDA and, on CPU, bf16 where the CPU has native bf16, else
    fp32; "fp32" forces full precision anywhere; "fp16" is CUDA-only, "bf16" CPU-only.
    """

    def __init__(
        self,
        models: Mapping[str, StyleModel],
        device: str | torch.device = "auto",
        size: int | None = 480,
        on_notice: Callable[[str], None] | None = None,
        channels_last: bool | None = None,
        precision: str = "auto",
    ) -> None:
        if not models:
            raise ValueError("no styles to run: give at least one style model")
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        self._models = dict(models)
        self._style = next(iter(self._models))
        super().__init__(size)
        self._scale = 1.0  # lowered by GPU out-of-memory faults
        self.on_notice = on_notice
        self._channels_last_request = channels_last
        self._precision_request = precision
        self._lock = threading.RLock()
        self.notices: list[str] = []  # every on_notice message so far, for a UI attached later
        dev = resolve_device(str(device))  # ValueError for an unknown or unavailable device
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        if (dev.type, precision) in (("cuda", "bf16"), ("cpu", "fp16")):
            raise ValueError(f"precision {precision} is not offered on {dev.type}; use auto or fp32")
        try:
            self._load(dev)
        except Exception as exc:
            if dev.type != "cuda" or not is_cuda_fault(exc):
                raise
            log.warning("loading the styles on %s failed: %r", dev, exc)
            self._load(torch.device("cpu"))
            self._notice(f"the styles could not be loaded on the GPU ({_first_line(exc)}); running on CPU {self.precision}")

    # ----------------------------------------------------------------------------- set-up
    def _load(self, device: torch.device) -> None:
        """(Re)build every style on `device`; the StyleModels stay on the CPU as the source."""
        self._device = device
        self._buffers: _CudaBuffers | None = None
        self._dtype = self._resolve_dtype(device)
        if device.type == "cuda":
            self._channels_last: bool | None = self._channels_last_request is not False
            torch.backends.cudnn.benchmark = True  # frame sizes are stable: let cuDNN pick kernels
            self._stream: torch.cuda.Stream | None = torch.cuda.Stream(device)
            self._device_name = torch.cuda.get_device_name(device)
        else:
            self._channels_last = self._channels_last_request  # None: measured on the first frame
            self._stream = None
            self._device_name = ""
            self._tuner = ThreadTuner(thread_choices(torch.get_num_threads()), label="torch threads")
        nets: dict[str, nn.Module] = {}
        for name, model in self._models.items():
            net = model.build(device, self._dtype)
            if self._channels_last:
                net = net.to(memory_format=torch.channels_last)
            nets[name] = net
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # weights ready before the side stream uses them
        self._nets = nets
        log.info("style engine on %s with %d style(s)", self.describe(), len(nets))

    def _resolve_dtype(self, device: torch.device) -> torch.dtype:
        request = self._precision_request
        if request == "auto" or (device.type == "cpu" and request == "fp16"):  # fp16: after a GPU fault
            request = default_precision(device)
        return _DTYPES[request]

    def _set_memory_format(self, channels_last: bool) -> None:
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        for net in self._nets.values():
            net.to(memory_format=fmt)
        self._channels_last = channels_last

    def _measure_memory_format(self, net: nn.Module, x: torch.Tensor) -> None:
        """Pick channels_last or not on this CPU by timing both on the real first frame (or take
        the choice timed by an earlier launch: nstcam.engines.memory_formats)."""
        key = memory_formats.choice_key(net, x)
        choice = memory_formats.recall(key)
        if choice is not None:
            log.info("CPU memory format at %dx%d: %s (measured before)", x.shape[-1], x.shape[-2],
                     "channels_last" if choice else "contiguous")
            self._set_memory_format(choice)
            return
        best: dict[bool, float] = {False: float("inf"), True: float("inf")}
        for rep in range(3):  # rep 0 warms up both (oneDNN primitive creation)
            for cl in (False, True):
                fmt = torch.channels_last if cl else torch.contiguous_format
                net.to(memory_format=fmt)
                xin = x.contiguous(memory_format=fmt)
                t0 = time.perf_counter()
                net(xin)
                if rep:
                    best[cl] = min(best[cl], time.perf_counter() - t0)
        choice = best[True] < 0.95 * best[False]
        log.info(
            "CPU memory format: contiguous %.1f ms, channels_last %.1f ms at %dx%d -> %s",
            best[False] * 1e3, best[True] * 1e3, x.shape[-1], x.shape[-2],
            "channels_last" if choice else "contiguous",
        )
        memory_formats.remember(key, choice, {"contiguous_ms": best[False] * 1e3, "channels_last_ms": best[True] * 1e3})
        self._set_memory_format(choice)

    # ----------------------------------------------------------------------------- properties
    @property
    def style(self) -> str:
        return self._style

    @property
    def style_names(self) -> list[str]:
        return list(self._models)

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def precision(self) -> str:
        """"fp16", "bf16" or "fp32": what the nets run in now."""
        return next(k for k, v in _DTYPES.items() if v == self._dtype)

    @property
    def channels_last(self) -> bool | None:
        """Whether the nets run channels_last (None on CPU until the first frame decides)."""
        return self._channels_last

    @property
    def processing_scale(self) -> float:
        """1.0 unless GPU out-of-memory faults lowered the processing size."""
        return self._scale

    def describe(self) -> str:
        text = f"{self._device} {self.precision}"
        if self._device.type == "cuda":
            text += f" ({self._device_name})"
        return self._with_selection(text)

    def set_style(self, name: str) -> None:
        self._style = self._check_style(name)

    def add_style(self, name: str, model: StyleModel) -> None:
        """Add (or replace) a style while frames run, e.g. one just trained in the app. Built on
        the engine's device, precision and memory format under the frame lock; the style dicts
        are swapped whole, so other threads see the old set or the new one, never a half."""
        with self._lock:
            net = model.build(self._device, self._dtype)
            if self._channels_last:
                net = net.to(memory_format=torch.channels_last)
            if self._device.type == "cuda":
                torch.cuda.synchronize(self._device)  # weights ready before the side stream uses them
            self._models = {**self._models, name: model}
            self._nets = {**self._nets, name: net}
        log.info("style %s added", name)

    def remove_style(self, name: str) -> None:
        """Drop a style added while frames run (an instant style the user removed); the style in
        use cannot be removed (choose another first), so a frame never lacks its network."""
        with self._lock:
            if name == self._style:
                raise ValueError(f"style {name!r} is in use; choose another style before removing it")
            self._models = {k: v for k, v in self._models.items() if k != name}
            self._nets = {k: v for k, v in self._nets.items() if k != name}
        log.info("style %s removed", name)

    def _check_style(self, name: str) -> str:
        if name not in self._models:
            raise KeyError(f"unknown style {name!r}; available: {', '.join(self._models)}")
        return name

    def output_size(self, width: int, height: int, size: int | None | _Default = DEFAULT) -> tuple[int, int]:
        """The (w, h) `stylize` returns for a width x height frame."""
        requested = self._requested(size)
        if self._scale == 1.0:
            return processing_size(width, height, requested)
        short = min(width, height) if requested is None else requested
        return processing_size(width, height, max(MIN_SIZE, round(short * self._scale)))

    # ----------------------------------------------------------------------------- running
    def stylize(
        self,
        frame_bgr: np.ndarray,
        style: str | None = None,
        size: int | None | _Default = DEFAULT,
    ) -> np.ndarray:
        """BGR uint8 (H, W, 3) -> stylized RGB uint8 at `output_size` (a new array each call)."""
        if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3 or frame_bgr.dtype != np.uint8:
            raise ValueError(f"expected a BGR uint8 frame (H, W, 3), got {frame_bgr.dtype} {frame_bgr.shape}")
        name = self._check_style(style) if style is not None else self._style
        h, w = frame_bgr.shape[:2]
        live = isinstance(size, _Default)  # the stream, at the engine's own size: timed and counted
        with self._lock:
            while True:
                tw, th = self.output_size(w, h, size)
                t0 = time.perf_counter()
                try:
                    if self._device.type == "cuda":
                        out = self._run_cuda(self._nets[name], frame_bgr, tw, th)
                    else:
                        out = self._run_cpu(self._nets[name], frame_bgr, tw, th, live=live)
                    break
                except Exception as exc:
                    if self._device.type != "cuda" or not is_cuda_fault(exc):
                        raise
                    self._recover(exc, (tw, th), w, h, size)
            elapsed = time.perf_counter() - t0
        if live:
            self._timer.tick(elapsed)
        return out

    def warmup(self, width: int = 640, height: int = 480) -> None:
        """Run one black frame (cuDNN autotuning / CPU memory-format choice) without counting it."""
        self.stylize(np.zeros((height, width, 3), np.uint8))
        self._timer.reset()

    @torch.inference_mode()
    def _run_cpu(self, net: nn.Module, frame: np.ndarray, tw: int, th: int, live: bool) -> np.ndarray:
        """`live`: a frame of the stream at the engine's own size, timed for the thread tuner."""
        h, w = frame.shape[:2]
        frame = resize_to(frame, (tw, th))
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        # HWC memory viewed as NCHW is already channels_last; .to() keeps that layout.
        x = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).to(self._dtype).div_(255.0)
        if self._channels_last is None:
            self._measure_memory_format(net, x)
        if not self._channels_last:
            x = x.contiguous()
        threads = self._tuner.current if live else self._tuner.settled
        if torch.get_num_threads() != threads:  # per thread: the stylize thread sets its own
            torch.set_num_threads(threads)
        t0 = time.perf_counter()
        y = net(x)
        if live:
            self._tuner.record(time.perf_counter() - t0)
        return _to_rgb_uint8(y.float()).numpy()  # bf16 is too coarse to scale to 0-255 in

    @torch.inference_mode()
    def _run_cuda(self, net: nn.Module, frame: np.ndarray, tw: int, th: int) -> np.ndarray:
        h, w = frame.shape[:2]
        buf = self._buffers
        if buf is None or not buf.fits(frame.shape, (th, tw)):
            buf = self._buffers = _CudaBuffers(frame.shape, (th, tw), self._device)
        np.copyto(buf.in_host_np, frame)  # the previous frame's copies finished: we synchronised
        assert self._stream is not None
        with torch.cuda.stream(self._stream):
            buf.in_dev.copy_(buf.in_host, non_blocking=True)
            x = buf.in_dev.permute(2, 0, 1).unsqueeze(0).flip(1)  # (1, 3, H, W) RGB uint8
            x = x.to(self._dtype).div_(255.0)
            if (th, tw) != (h, w):
                if tw < w:
                    x = F.interpolate(x, size=(th, tw), mode="area")
                else:
                    x = F.interpolate(x, size=(th, tw), mode="bilinear", align_corners=False)
            x = x.contiguous(memory_format=torch.channels_last if self._channels_last else torch.contiguous_format)
            y = _to_rgb_uint8(net(x))
            buf.out_host.copy_(y, non_blocking=True)
            buf.done.record(self._stream)
        buf.done.synchronize()  # waits for this frame only, not for the whole device
        return buf.out_host_np.copy()  # the pinned buffer is reused by the next frame

    def _recover(self, exc: BaseException, failed: tuple[int, int], w: int, h: int, size: int | None | _Default) -> None:
        """After a CUDA fault: shrink the processing size (OOM) or move to CPU; tell the user."""
        self._buffers = None
        try:
            torch.cuda.empty_cache()
        except Exception:  # a broken CUDA context may refuse even this
            pass
        requested = self._requested(size)
        short = min(w, h) if requested is None else requested
        if _is_oom(exc) and round(short * self._scale * SHRINK) >= MIN_SIZE:
            self._scale *= SHRINK
            nw, nh = self.output_size(w, h, size)
            self._notice(
                f"GPU out of memory at {failed[0]}x{failed[1]}; lowering the processing size to {nw}x{nh}"
            )
            return
        reason = (
            "GPU out of memory even at the smallest processing size" if _is_oom(exc) else f"GPU error ({_first_line(exc)})"
        )
        log.warning("falling back to CPU after: %r", exc)
        self._scale = 1.0
        self._load(torch.device("cpu"))
        self._notice(f"{reason}; switched to CPU {self.precision}, which is much slower")

    def _notice(self, message: str) -> None:
        log.warning("%s", message)
        self.notices.append(message)
        if self.on_notice is not None:
            try:
                self.on_notice(message)
            except Exception:
                log.exception("on_notice callback failed")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _to_rgb_uint8(y: torch.Tensor) -> torch.Tensor:
    """Net output (1, 3, H, W) in ~[0, 1] -> (H, W, 3) uint8, contiguous, on y's device."""
    return y[0].clamp(0, 1).mul_(255.0).round_().to(torch.uint8).permute(1, 2, 0).contiguous()
