"""What a media file holds, read from its container with PyAV before OpenCV decodes it.

OpenCV's frame rate is the container's *stated* one, which is often wrong: Matroska files without
a rate say 24, variable-rate files state their time base (1000 fps) or nothing. The first video
packets' timestamps tell the real rate; the streams tell whether there is video at all (an
audio-only file) and whether there is sound, which `render` does not copy.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PROBE_PACKETS = 64  # video packets read (demuxed, not decoded) to measure the frame rate
COMMON_RATES = (24000 / 1001, 24.0, 25.0, 30000 / 1001, 30.0, 50.0, 60000 / 1001, 60.0)


@dataclass(frozen=True)
class MediaInfo:
    """`video`/`audio`: the file has such a stream. `video_packets`: video packets among the first
    PROBE_PACKETS (0: a video stream without frames). `rate`: frames per second from those
    packets' timestamps (None: fewer than two, or no timestamps). `frames`: the video's frame
    count, stated or estimated from its duration (None: unknown). `size`: (w, h) of the video."""

    video: bool
    audio: bool
    video_packets: int = 0
    rate: float | None = None
    frames: int | None = None
    size: tuple[int, int] = (0, 0)

    @property
    def no_pictures(self) -> str:
        """What the file holds instead of pictures ("only sound", "no video stream"); "" when it
        has a video stream."""
        return "" if self.video else "only sound" if self.audio else "no video stream"


def probe_media(path: str | Path) -> MediaInfo | None:
    """The file's streams and measured frame rate; None where PyAV is missing or cannot open it."""
    try:
        import av

        with av.open(str(path)) as container:
            return _describe(container)
    except Exception as exc:  # PyAV missing, or a file FFmpeg cannot parse: OpenCV will say so
        log.debug("could not probe %s: %s", path, exc)
        return None


def _describe(container) -> MediaInfo:
    audio = bool(container.streams.audio)
    if not container.streams.video:
        return MediaInfo(video=False, audio=audio)
    stream = container.streams.video[0]
    stamps = []
    packets = 0
    for packet in container.demux(stream):
        if packet.size == 0:
            continue  # the flush packet at the end
        packets += 1
        if packet.pts is not None:
            stamps.append(float(packet.pts * packet.time_base))
        if packets >= PROBE_PACKETS:
            break
    stamps.sort()
    span = stamps[-1] - stamps[0] if len(stamps) >= 2 else 0.0
    rate = _snap((len(stamps) - 1) / span) if span > 0 else None
    frames = stream.frames or None
    if frames is None and rate is not None and container.duration:
        frames = round(container.duration / 1_000_000 * rate)
    if packets < PROBE_PACKETS:
        frames = packets  # the whole stream was read
    return MediaInfo(video=True, audio=audio, video_packets=packets, rate=rate, frames=frames,
                     size=(stream.width, stream.height))


def _snap(rate: float) -> float:
    """A common rate when within 0.5 % of it (millisecond timestamps make 30 fps read as 29.995)."""
    nearest = min(COMMON_RATES, key=lambda common: abs(rate / common - 1))
    return nearest if abs(rate / nearest - 1) < 0.005 else rate
