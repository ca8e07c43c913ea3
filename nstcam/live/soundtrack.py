"""The input's sound, carried into a rendered video: decoded with PyAV and encoded as AAC.

Re-encoding, not copying the packets, because a container takes only some codecs (Vorbis or PCM
do not go into MP4); AAC goes into MP4, MOV and Matroska alike, and costs little next to the
video. The video writer calls `mux_until(t)` after each frame, so sound and pictures are
interleaved in time (a muxer holds back what it cannot interleave, and a fragmented MP4 would
otherwise put all the sound at the end); `finish(end)` adds the rest up to the video's end and
drops any sound past it (a cancelled render).
"""
from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

log = logging.getLogger(__name__)

LEAD_SECONDS = 0.5  # sound muxed this far ahead of the last video frame


class Soundtrack:
    """The first audio stream of `source`, as an AAC stream added to the output `container`
    (a PyAV output container, before anything is muxed into it)."""

    def __init__(self, source: str | Path, container) -> None:
        import av

        self._input = av.open(str(source))
        try:
            decoder = self._input.streams.audio[0].codec_context
            self._start = float(self._input.start_time or 0) / av.time_base  # the video's zero too
            self._rate = decoder.sample_rate or 48000
            mono = decoder.layout is not None and decoder.layout.nb_channels == 1
            self._stream = container.add_stream("aac", rate=self._rate, layout="mono" if mono else "stereo")
            self._frames = self._input.decode(audio=0)
        except BaseException:
            self._input.close()
            raise
        self._container = container
        self._source = source
        self._next = None  # (frame, seconds): decoded, past the video so far

    def mux_until(self, seconds: float) -> None:
        """Encode and mux the sound up to `seconds` (from the input's start) plus a little lead."""
        self._feed(seconds + LEAD_SECONDS)

    def finish(self, end: float) -> None:
        """The sound up to `end` (the video's end), then the encoder's last packets."""
        try:
            self._feed(end)
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        finally:
            self._input.close()

    def _feed(self, until: float) -> None:
        while True:
            if self._next is None:
                frame = self._decode()
                if frame is None:
                    return
                if frame.time is None:
                    continue
                self._next = (frame, frame.time - self._start)
            frame, seconds = self._next
            if seconds >= until:
                return
            self._next = None
            if seconds >= 0:
                frame.pts, frame.time_base = round(seconds * self._rate), Fraction(1, self._rate)
                for packet in self._stream.encode(frame):
                    self._container.mux(packet)

    def _decode(self):
        """The input's next sound frame; None at its end, or where it is damaged (said once: the
        video goes on without the rest of the sound, rather than the render failing)."""
        import av

        try:
            return next(self._frames, None)
        except av.error.FFmpegError as exc:
            log.warning("%s: its sound is damaged (%s); the rest of the output has none", self._source, exc)
            self._frames = iter(())
            return None
