"""Recording stylized frames to a video file without slowing the live view, and surviving a crash.

`Recorder.write` only enqueues; a writer thread encodes. In live use (`realtime=True`) the queue is
bounded (`queue_frames`, ~2 s at 30 fps): if the encoder falls that far behind, new frames are
dropped and counted in `frames_dropped` rather than letting memory grow or stalling the caller; a
dropped frame shortens the video (frames keep their index as pts), it does not leave a gap.
With `realtime=False` (offline rendering) `write` blocks until there is room, so nothing is dropped.

The default writer is H.264 (libx264, yuv420p, crf 20, preset veryfast, tune zerolatency) via PyAV
into fragmented MP4 (`frag_keyframe+empty_moov+default_base_moof`) with a keyframe every second, a
new fragment every FRAGMENT_SECONDS (0.25 s; a fragment need not start on a keyframe) and a flush
after every packet: each quarter second of video is on disk as soon as it is encoded, so a
`kill -9` loses at most about the last 0.25 s. MKV gets clusters of the same length. Short
fragments, not a shorter keyframe interval: their headers cost far less file size. ("zerolatency"
drops x264's lookahead and B-frames, whose ~1 s of buffered frames would otherwise add to that
loss.) The kill test's figures: docs/design-notes.md. Frames reach the encoder as YUV 4:2:0 made
by nstcam.live.yuv (swscale's RGB path took three times as long), and up to 720p x264 runs on the
writer thread alone: with "zerolatency" its threads split each frame into slices, which at these
sizes costs more CPU in hand-offs than it saves. Both together: 1.53 against 2.06 ms of CPU a
320x240 stylized frame; at 1280x720 one thread takes 18.4 ms a frame, within 30 fps.
"""
from __future__ import annotations

import logging
import os
import queue
import shutil
import stat
import threading
import time
from collections.abc import Callable, Mapping
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from nstcam.live.yuv import rgb_to_i420
from nstcam.resample import resize_to

log = logging.getLogger(__name__)

AV_SUFFIXES = (".mp4", ".mov", ".mkv")
AV_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}
FRAGMENTED_SUFFIXES = (".mp4", ".mov")
# Longest stretch of encoded video held in memory by the muxer: what a kill -9 can lose.
FRAGMENT_SECONDS = 0.25
ONE_THREAD_PIXELS = 1280 * 720  # up to this frame size x264 encodes on the writer thread alone
FULL_DISK_BYTES = 1 << 20  # less free space than this after a short file: the disk filled up
# How often the writer checks that its file is still there: writing into a deleted file (its
# folder removed while recording) succeeds on Linux, so nothing else would ever notice.
PRESENCE_CHECK_SECONDS = 1.0
TIMESTAMP_CLOCK = Fraction(1, 90000)  # time base of frames written with their own times (MPEG's clock)
_STOP = object()


class RecorderError(RuntimeError):
    """The video file could not be created or encoding failed."""


def _libx264_available() -> bool:
    try:
        import av

        return "libx264" in av.codecs_available
    except Exception:  # PyAV missing or broken
        return False


def _av_encoder(name: str) -> bool:
    try:
        import av

        return name in av.codecs_available
    except Exception:
        return False


class _AvWriter:
    """PyAV encoder; `codec` libx264 (H.264) or, when that is missing, mpeg4."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int], codec: str, crf: int,
                 metadata: Mapping[str, str], container_format: str | None = None,
                 clock: Fraction | None = None, sound_from: Path | None = None) -> None:
        import av

        rate = Fraction(fps).limit_denominator(1001)
        container_options = {"flush_packets": "1"}
        if path.suffix.lower() in FRAGMENTED_SUFFIXES:
            container_options["movflags"] = "frag_keyframe+empty_moov+default_base_moof"
            container_options["frag_duration"] = str(round(FRAGMENT_SECONDS * 1_000_000))  # microseconds
            # The AAC encoder's priming (1024 samples, 23 ms at 44.1 kHz) comes before zero. Without
            # an edit list to say so, the fragmented muxer shifted every later video frame by it.
            container_options["use_editlist"] = "1"
        elif path.suffix.lower() == ".mkv":
            container_options["cluster_time_limit"] = str(round(FRAGMENT_SECONDS * 1000))  # milliseconds
        self._container = av.open(str(path), mode="w", format=container_format,
                                  container_options=container_options)
        self._container.metadata.update(metadata)
        try:
            stream = self._container.add_stream(codec, rate=rate)
            stream.width, stream.height = size
            stream.pix_fmt = "yuv420p"
            gop = max(1, round(fps))
            ctx = stream.codec_context
            ctx.time_base = clock or 1 / rate  # pts count frames, or ticks of `clock`
            ctx.framerate = rate
            ctx.gop_size = gop
            if codec == "libx264":
                ctx.options = {
                    "preset": "veryfast",
                    "tune": "zerolatency",
                    "crf": str(crf),
                    "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0",
                    **({"threads": "1"} if size[0] * size[1] <= ONE_THREAD_PIXELS else {}),
                }
            else:
                ctx.options = {"qscale": "3", "bf": "0"}
            self._stream = stream
            self._time_base = ctx.time_base
            self._end = 0.0  # seconds: where the last frame written ends
            self._frame_seconds = float(1 / rate)
            self._sound = _soundtrack(sound_from, self._container) if sound_from is not None else None
        except BaseException:
            self._container.close()
            raise
        self._av = av

    def write(self, frame_rgb: np.ndarray, pts: int) -> None:
        frame = self._av.VideoFrame.from_ndarray(rgb_to_i420(frame_rgb), format="yuv420p")
        frame.pts = pts
        frame.time_base = self._time_base
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        start = float(pts * self._time_base)
        self._end = start + self._frame_seconds
        if self._sound is not None:
            self._sound.mux_until(start)

    def close(self) -> None:
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            if self._sound is not None:
                self._sound.finish(self._end)
        finally:
            self._container.close()


class _CvWriter:
    """OpenCV MJPG fallback (any build of OpenCV can write it; big files, but robust)."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), float(fps), size)
        if not self._writer.isOpened():
            raise RecorderError(f"OpenCV could not create {path} (MJPG)")

    def write(self, frame_rgb: np.ndarray, pts: int) -> None:  # a constant rate: no timestamps
        self._writer.write(cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        self._writer.release()


def _soundtrack(source: Path, container):
    """The input's sound as a stream of `container`; None (and said) where it cannot be read."""
    from nstcam.live.soundtrack import Soundtrack

    try:
        return Soundtrack(source, container)
    except Exception as exc:
        log.warning("%s: its sound cannot be carried over (%s); the output has none", source, exc)
        return None


def frames_in_file(path: Path) -> int | None:
    """Video packets that can be read back from `path` (demuxed, not decoded: a few ms per
    thousand frames); None where PyAV cannot tell."""
    try:
        import av

        with av.open(str(path)) as container:
            return sum(1 for packet in container.demux(video=0) if packet.size and not packet.is_corrupt)
    except Exception:  # PyAV missing, or a file it cannot open: nothing to compare with
        return None


def disk_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < FULL_DISK_BYTES
    except OSError:
        return False


def is_special_file(path: Path) -> bool:
    """An existing device, pipe or socket (`-o /dev/null`, a FIFO): written into as it is,
    never renamed, replaced or removed."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _plan(path: Path) -> tuple[Path, str]:
    """(final path, writer) for a requested path: 'libx264', 'mpeg4' (PyAV) or 'mjpg' (OpenCV)."""
    suffix = path.suffix.lower()
    if is_special_file(path):
        codec = next((c for c in ("libx264", "mpeg4") if _av_encoder(c)), None)
        if codec is None:
            raise RecorderError(f"{path} is a device or pipe, which nstcam writes only with PyAV's "
                                "encoders, and this PyAV build has none; give a file name instead")
        return path, codec
    if suffix == ".avi":
        log.info("%s: AVI container, recording MJPG with OpenCV", path)
        return path, "mjpg"
    if suffix not in AV_SUFFIXES:
        new = path.with_name(path.name + ".mkv") if suffix else path.with_suffix(".mkv")
        log.warning("%s: %r is not a video container nstcam writes (.mp4, .mov, .mkv, .avi); recording to %s",
                    path, suffix or "no extension", new.name)
        path, suffix = new, ".mkv"
    if _libx264_available():
        return path, "libx264"
    if _av_encoder("mpeg4"):
        log.warning("this PyAV build has no libx264 encoder; recording MPEG-4 part 2 instead")
        return path, "mpeg4"
    avi = path.with_suffix(".avi")
    log.warning("PyAV cannot encode video here; recording MJPG with OpenCV to %s", avi)
    return avi, "mjpg"


class Recorder:
    """Encodes RGB frames to `path` on a writer thread. Always `close()` it (idempotent).

    The frame size is fixed by the first frame (rounded down to even, which yuv420p needs, by
    cropping the odd row/column); later frames of another size are resized to it. An existing file
    is never overwritten: the next free name (`unique_path`) is used and logged, and `.path` is the
    file actually written. Encoding errors go to `on_error` (and `error`); later frames are ignored.
    """

    def __init__(
        self,
        path: str | Path,
        fps: float,
        on_error: Callable[[str], None] | None = None,
        realtime: bool = True,
        queue_frames: int = 60,
        crf: int = 20,
        metadata: Mapping[str, str] | None = None,
        sound_from: str | Path | None = None,
    ) -> None:
        if not fps or fps <= 0:
            raise ValueError(f"recording frame rate must be positive, got {fps}")
        requested = Path(path).expanduser()
        planned, self.codec = _plan(requested)
        self.special = is_special_file(planned)  # written into as given: no new name, never removed
        if self.special:
            self.path = planned
        else:
            planned.parent.mkdir(parents=True, exist_ok=True)
            self.path = self._reserve(planned)
        if self.path != planned:
            log.info("%s exists; recording to %s instead", planned, self.path.name)
        self.fps = float(fps)
        self.on_error = on_error
        self.realtime = realtime
        self.crf = crf
        self.metadata = dict(metadata or {})  # container tags, e.g. {"comment": "..."} (PyAV writers)
        self.sound_from = Path(sound_from) if sound_from is not None and self.codec != "mjpg" else None
        if sound_from is not None and self.sound_from is None:
            log.warning("%s has sound; %s will not (MJPG/AVI is written without it)", sound_from, self.path.name)
        self.frames_written = 0
        self.frames_dropped = 0
        self.error: str | None = None
        self.size: tuple[int, int] | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, queue_frames))
        self._closed = False
        self._close_lock = threading.Lock()
        self._progress = threading.Condition()
        self._enqueued = 0
        self._handled = 0
        self._identity: tuple[int, int] | None = None  # (device, inode) of the file, once it is written
        self._next_check = 0.0
        self._t0: float | None = None  # the first frame's `t`, when frames are written at their times
        self._last_pts = -1
        self._thread = threading.Thread(target=self._run, name=f"recorder[{self.path.name}]", daemon=True)
        self._thread.start()

    @staticmethod
    def unique_path(path: str | Path) -> Path:
        """`path` if free, else the first free of `name-1.ext`, `name-2.ext`, ..."""
        path = Path(path)
        if not path.exists():
            return path
        n = 1
        while True:
            candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
            if not candidate.exists():
                return candidate
            n += 1

    @classmethod
    def _reserve(cls, path: Path) -> Path:
        """Create the free name exclusively, so two recorders started together cannot share it."""
        for _ in range(100):
            candidate = cls.unique_path(path)
            try:
                candidate.open("xb").close()
                return candidate
            except FileExistsError:
                continue
        raise RecorderError(f"could not find a free file name next to {path}")

    @property
    def elapsed_seconds(self) -> float:
        return self.frames_written / self.fps

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, frame_rgb: np.ndarray, t: float | None = None) -> bool:
        """Queue an RGB uint8 (H, W, 3) frame; False if it was dropped (queue full, closed, failed).
        `t`: its presentation time in seconds on any clock, given for every frame or none; the
        file then keeps those times (a variable frame rate; MJPG/AVI excepted, which holds a
        constant one), else frame i lasts 1/fps."""
        if self._closed or self.error is not None:
            return False
        if frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3 or frame_rgb.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 frame (H, W, 3), got {frame_rgb.dtype} {frame_rgb.shape}")
        try:
            self._queue.put((frame_rgb, t), block=not self.realtime)
        except queue.Full:
            self.frames_dropped += 1
            return False
        with self._progress:
            self._enqueued += 1
        return True

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every queued frame has been handed to the encoder; False on timeout."""
        with self._progress:
            return self._progress.wait_for(
                lambda: self._handled >= self._enqueued or not self._thread.is_alive(), timeout
            )

    def close(self, timeout: float | None = None) -> bool:
        """Encode what is queued, finalise the file and join the writer. Idempotent; False if the
        writer was still finishing when `timeout` ran out."""
        with self._close_lock:
            if not self._closed:
                self._closed = True
                self._queue.put(_STOP)  # the writer always drains, so this cannot block for long
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------------- writer thread
    def _run(self) -> None:
        writer = None
        index = 0
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    break
                try:
                    if self.error is None:
                        frame, t = item
                        if writer is None:
                            writer = self._open_writer(frame, timed=t is not None)
                            self._t0 = t if isinstance(writer, _AvWriter) else None  # AVI: constant rate
                        writer.write(self._fit(frame), self._pts(index, t))
                        index += 1
                        self.frames_written = index
                        self._check_presence()
                except Exception as exc:
                    self._fail(exc)
                finally:
                    with self._progress:
                        self._handled += 1
                        self._progress.notify_all()
        finally:
            if writer is not None:
                try:
                    writer.close()
                except Exception as exc:
                    self._fail(exc)
                if self.error is None and not self.realtime and not self.special:
                    self._verify(index)
            if index == 0 and not self.special:
                self.path.unlink(missing_ok=True)  # no frame ever came: leave no empty file behind
            else:
                log.info("recorded %d frames (%.1f s, %d dropped) to %s", index, self.elapsed_seconds,
                         self.frames_dropped, self.path)
            with self._progress:
                self._handled = self._enqueued
                self._progress.notify_all()

    def _pts(self, index: int, t: float | None) -> int:
        """Frame `index`'s pts: its index, or its time since the first frame in TIMESTAMP_CLOCK
        ticks, kept increasing (a muxer refuses equal or earlier ones)."""
        if t is None or self._t0 is None:
            return index
        pts = max(round((t - self._t0) / TIMESTAMP_CLOCK), self._last_pts + 1)
        self._last_pts = pts
        return pts

    def _open_writer(self, first: np.ndarray, timed: bool = False) -> _AvWriter | _CvWriter:
        h, w = first.shape[:2]
        if w < 2 or h < 2:
            raise RecorderError(f"frame of {w}x{h} is too small to record")
        self.size = (w - w % 2, h - h % 2)
        self._identity = self._file_identity()
        if self.codec == "mjpg":
            return _CvWriter(self.path, self.fps, self.size)
        container_format = AV_FORMATS.get(self.path.suffix.lower(), "matroska") if self.special else None
        return _AvWriter(self.path, self.fps, self.size, self.codec, self.crf, self.metadata, container_format,
                         TIMESTAMP_CLOCK if timed else None, self.sound_from)

    def _file_identity(self) -> tuple[int, int] | None:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return None
        return info.st_dev, info.st_ino

    def _check_presence(self) -> None:
        """Fail (to `on_error`: the window stops REC and says why) once the file being written is
        gone or replaced, e.g. its folder deleted: what it held is lost, and later frames would be too."""
        now = time.monotonic()
        if self.special or now < self._next_check:
            return
        self._next_check = now + PRESENCE_CHECK_SECONDS
        identity = self._file_identity()
        if identity is None or identity != self._identity:
            raise RecorderError(f"the file (or its folder {self.path.parent}) was deleted or replaced while "
                                "recording; recording stopped")

    def _verify(self, expected: int) -> None:
        """Offline, count the frames that reached the file: a disk that fills while the muxer
        flushes its last buffer and index loses frames without an error from the writer (OpenCV's
        AVI writer never reports one), and a render must not say it wrote them."""
        found = frames_in_file(self.path)
        if found is not None and found < expected:
            cause = "no space left on device: " if disk_full(self.path.parent) else ""
            self._fail(RecorderError(f"{cause}only {found} of {expected} frames reached the file"))

    def _fit(self, frame: np.ndarray) -> np.ndarray:
        assert self.size is not None
        w, h = self.size
        fh, fw = frame.shape[:2]
        if (fw, fh) == (w, h):
            return frame
        if fw - w in (0, 1) and fh - h in (0, 1):
            return np.ascontiguousarray(frame[:h, :w])  # the odd row/column yuv420p cannot hold
        return resize_to(frame, (w, h))

    def _fail(self, exc: BaseException) -> None:
        if self.error is not None:
            log.debug("further recording error: %r", exc)
            return
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc  # the path is named once
        self.error = f"recording to {self.path} failed: {detail}"
        log.error("%s", self.error)
        if self.on_error is not None:
            try:
                self.on_error(self.error)
            except Exception:
                log.exception("on_error callback failed")
