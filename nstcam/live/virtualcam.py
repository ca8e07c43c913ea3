"""The virtual camera sink: the stylized feed as a webcam that video-call apps can select.

Frames go through pyvirtualcam (v4l2loopback on Linux, OBS Virtual Camera on Windows and macOS).
A virtual camera has one fixed size and rate (default 1280x720 at 30 fps), so each stylized frame
is scaled into it with its aspect kept (black bars). `offer` only replaces the newest frame; a
sender thread scales and sends it, at most `fps` times a second, so a slow or stalled consumer of
the virtual device never holds up the stylize thread.
"""
from __future__ import annotations

import logging
import sys
import threading

import numpy as np

from nstcam.live.frames import LatestSlot
from nstcam.live.pipeline import FrameResult
from nstcam.resample import resize_to

log = logging.getLogger(__name__)

DEFAULT_SIZE = (1280, 720)
DEFAULT_FPS = 30.0
POLL_SECONDS = 0.1


class VirtualCameraUnavailable(RuntimeError):
    """No virtual camera can be opened here; the message says what to install."""


def install_advice() -> str:
    if sys.platform.startswith("linux"):
        return ("load the v4l2loopback kernel module: `sudo apt install v4l2loopback-dkms` (Fedora: "
                "`sudo dnf install v4l2loopback`), then `sudo modprobe v4l2loopback exclusive_caps=1 "
                "card_label=nstcam`")
    return "install OBS Studio (28 or newer) and start its Virtual Camera once"


def letterbox(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`rgb` scaled to fit `size` (w, h) with its aspect ratio kept, centred on black."""
    w, h = size
    fh, fw = rgb.shape[:2]
    k = min(w / fw, h / fh)
    tw, th = max(1, round(fw * k)), max(1, round(fh * k))
    scaled = resize_to(rgb, (tw, th))
    out = np.zeros((h, w, 3), np.uint8)
    x, y = (w - tw) // 2, (h - th) // 2
    out[y:y + th, x:x + tw] = scaled
    return out


def open_camera(size: tuple[int, int] = DEFAULT_SIZE, fps: float = DEFAULT_FPS,
                device: str | None = None, backend: str | None = None):
    """A `pyvirtualcam.Camera`; VirtualCameraUnavailable (with advice) when none can be opened."""
    try:
        import pyvirtualcam
    except ImportError:
        raise VirtualCameraUnavailable(
            "the virtual camera needs the pyvirtualcam package: `pip install pyvirtualcam`; then "
            + install_advice()) from None
    try:
        return pyvirtualcam.Camera(width=size[0], height=size[1], fps=fps, fmt=pyvirtualcam.PixelFormat.RGB,
                                   device=device, backend=backend)
    except (RuntimeError, ValueError, OSError, KeyError) as exc:
        where = f" {device}" if device else ""
        reason = " ".join(str(exc).split())
        raise VirtualCameraUnavailable(
            f"no virtual camera{where} could be opened ({reason}); to get one, {install_advice()}") from None


def unavailable_reason(size: tuple[int, int] = DEFAULT_SIZE, fps: float = DEFAULT_FPS) -> str | None:
    """None when a virtual camera can be opened here, else what to install (opens and closes one)."""
    try:
        open_camera(size, fps).close()
    except VirtualCameraUnavailable as exc:
        return str(exc)
    return None


class VirtualCameraSink:
    """Sends the newest stylized frame to a virtual camera from its own thread."""

    def __init__(self, size: tuple[int, int] = DEFAULT_SIZE, fps: float = DEFAULT_FPS,
                 device: str | None = None, backend: str | None = None) -> None:
        self.size = size
        self.fps = fps
        self._camera = open_camera(size, fps, device, backend)
        self.device: str = self._camera.device
        self.name = f"virtual camera[{self.device}]"
        self.frames_sent = 0
        self.error: Exception | None = None
        self._slot: LatestSlot[np.ndarray] = LatestSlot()
        self._thread = threading.Thread(target=self._run, name="virtualcam", daemon=True)
        self._thread.start()

    def offer(self, result: FrameResult) -> None:
        if self.error is not None:
            raise self.error  # the fan-out reports it once and detaches this sink
        self._slot.put(result.stylized_rgb)

    def close(self, timeout: float) -> bool:
        self._slot.close()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        last = 0
        try:
            while True:
                got = self._slot.get(after=last, timeout=POLL_SECONDS)
                if got is None:
                    if self._slot.closed:
                        break
                    continue
                last, rgb = got
                self._camera.send(letterbox(rgb, self.size))
                self.frames_sent += 1
                self._camera.sleep_until_next_frame()
        except (RuntimeError, ValueError, OSError) as exc:  # the device went away
            log.warning("virtual camera %s failed", self.device, exc_info=exc)
            self.error = exc
        finally:
            self._camera.close()
