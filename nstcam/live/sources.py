"""Where frames come from: a camera index, a video file, a stream URL or the built-in demo scene.

Everything is normalised to the small `FrameSource` interface (BGR uint8 frames, nominal fps,
size) so the capture thread does not care which kind it drives. Opening failures raise
`SourceError` with a message meant for the user: what failed and what to try instead.
"""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

log = logging.getLogger(__name__)

DEFAULT_FPS = 30.0
CAMERA_REQUEST_SIZE = (1280, 720)


class SourceError(RuntimeError):
    """A frame source could not be opened; the message names it and suggests what to do."""


@runtime_checkable
class FrameSource(Protocol):
    """The interface the capture thread drives.

    `live` is True for sources that pace themselves (cameras, network streams): reading blocks
    until the next frame. Files and the demo scene return frames as fast as asked, so the capture
    thread paces them at `fps`.
    """

    fps: float
    size: tuple[int, int]
    description: str
    is_file: bool
    live: bool
    frame_count: int | None

    def read(self) -> np.ndarray | None: ...

    def release(self) -> None: ...


def parse_source(spec: str | int) -> int | str:
    """"0" -> camera index 0, "demo" -> "demo", a URL as is, else an existing local path."""
    if isinstance(spec, int):
        return spec
    text = str(spec).strip()
    if not text:
        raise SourceError("empty source: give a camera index (0, 1, ...), a video file, a URL or 'demo'")
    if text.isdigit():
        return int(text)
    if text.lower() == "demo":
        return "demo"
    if "://" in text:
        return text
    path = Path(text).expanduser()
    if not path.exists():
        raise SourceError(
            f"video file {text!r} does not exist; give an existing file, a camera index (0, 1, ...) "
            "or 'demo'"
        )
    if path.is_dir():
        raise SourceError(f"{text!r} is a folder, not a video file")
    return str(path)


def open_source(spec: str | int) -> FrameSource:
    """Open `spec` (see `parse_source`); raises SourceError with advice when that fails."""
    target = parse_source(spec)
    if target == "demo":
        from nstcam.live.demo import DemoSource

        return DemoSource()
    return CvSource(target)


def _valid_fps(value: float) -> float:
    return value if math.isfinite(value) and 0.5 <= value <= 1000 else DEFAULT_FPS


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes of a file name, kept as surrogates
        return False
    return True


def open_by_descriptor(path: str) -> tuple[int, str]:
    """(fd, a name for it that is valid UTF-8) for a file whose name is not: OpenCV converts a
    name's surrogates with no check and crashes (segfault in cv2.VideoCapture), so the file is
    opened here and handed over as /proc/self/fd/N (Linux). Close the fd when done."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise SourceError(f"video file {path!r} could not be opened ({exc.strerror})") from None
    alias = f"/proc/self/fd/{fd}"
    if not os.path.exists(alias):
        os.close(fd)
        raise SourceError(f"video file {path!r}: its name is not valid UTF-8, which OpenCV cannot "
                          "open on this system; rename the file")
    return fd, alias


class CvSource:
    """A camera, file or URL read through `cv2.VideoCapture` (FFmpeg / V4L2 / platform backend)."""

    def __init__(self, target: int | str) -> None:
        self.target = target
        # A device path (/dev/video0) is a camera too: live, endless, no frame count.
        self.is_camera = isinstance(target, int) or str(target).startswith("/dev/")
        self.is_url = isinstance(target, str) and "://" in target
        self.is_file = not (self.is_camera or self.is_url)
        if self.is_camera:
            self.description = f"camera {target}"
        elif self.is_url:
            self.description = f"stream {target}"
        else:
            name = os.fsencode(Path(str(target)).name).decode("utf-8", "replace")  # printable anywhere
            self.description = f"video {name}"

        self._fd: int | None = None
        if isinstance(target, str) and not _utf8(target):
            self._fd, target = open_by_descriptor(target)
        self._cap = cv2.VideoCapture(target)
        if not self._cap.isOpened():
            self.release()
            raise SourceError(self._open_failure_message())
        if self.is_camera:
            # A request, not a guarantee: the driver picks the closest mode it supports.
            w, h = CAMERA_REQUEST_SIZE
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, w)
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, h)

        stated_fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        measured = self._measured_fps() if self.is_file else None
        if measured is not None and abs(measured - stated_fps) > 0.001 * measured:
            log.info("%s states %.4g fps; its timestamps say %.4g", self.description, stated_fps, measured)
            stated_fps = measured
        self.fps = _valid_fps(stated_fps)
        self.fps_stated = self.fps == stated_fps  # False: the container gave no usable rate
        self.position: float | None = None  # presentation time (s) of the last frame read, files only
        self.size = (int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = count if count > 0 and not self.is_camera else None
        # A URL with a known frame count is a remote file, which must be paced like a local one.
        self.live = self.is_camera or (self.is_url and self.frame_count is None)
        log.info("opened %s: %dx%d at %.3g fps", self.description, *self.size, self.fps)

    def _measured_fps(self) -> float | None:
        """The rate the first frames' timestamps give (the stated one is often wrong: Matroska
        without a rate says 24, variable-rate files their time base); None if they do not say."""
        from nstcam.live.probe import probe_media

        info = probe_media(self.target)
        return info.rate if info is not None else None

    def _open_failure_message(self) -> str:
        if self.is_camera:
            return (
                f"camera {self.target} could not be opened: is it connected and not in use by another "
                "program? Try another camera index, --camera demo or a video file"
            )
        if self.is_url:
            return (
                f"stream {self.target} could not be opened: check the URL and the network, "
                "or try --camera demo or a video file"
            )
        from nstcam.live.probe import probe_media

        info = probe_media(self.target)
        if info is not None and info.no_pictures:
            return f"{self.target} holds {info.no_pictures}, no pictures to show. Try a video file or --camera demo"
        return (
            f"video file {self.target} could not be opened: it is not a video format FFmpeg/OpenCV "
            "can decode, or it is damaged. Try another file or --camera demo"
        )

    def read(self) -> np.ndarray | None:
        """The next frame as OpenCV decoded it (BGR, or grey/BGRA/16-bit from odd cameras: the
        capture thread and render normalise it with `nstcam.live.capture.to_bgr8`); None at the end."""
        ok, frame = self._cap.read()
        if not ok or frame is None or frame.size == 0:
            return None
        self.size = (frame.shape[1], frame.shape[0])
        if self.is_file:
            self.position = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        return frame

    def release(self) -> None:
        self._cap.release()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __repr__(self) -> str:
        return f"CvSource({self.description!r}, {self.size[0]}x{self.size[1]} @ {self.fps:.3g} fps)"
