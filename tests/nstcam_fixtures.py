"""Generated media for the live-pipeline tests: short video files and tiny style files.

Test modules import the fixtures they use from here (`from nstcam_fixtures import ...`); the
tests folder is on sys.path under pytest's default import mode. Nothing is downloaded.
"""
from __future__ import annotations

import builtins
import errno
import io
import os
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from trainer.stylefile import StyleModel, load_style, save_style
from trainer.transformer import TransformerConfig, TransformerNet

VIDEO_SIZE = (96, 64)  # (w, h)
VIDEO_FPS = 12.0
VIDEO_FRAMES = 24
TINY_CONFIG = TransformerConfig(width=4, res_blocks=1, outer_kernel=3)


def video_frame(i: int, size: tuple[int, int] = VIDEO_SIZE) -> np.ndarray:
    """Frame i of the test clip: moving shapes on a gradient, asymmetric so mirroring shows."""
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = np.linspace(40, 200, w, dtype=np.uint8)[None, :]
    img[..., 2] = np.linspace(200, 40, h, dtype=np.uint8)[:, None]
    cv2.circle(img, ((5 + 3 * i) % w, h // 3), max(3, h // 8), (0, 255, 0), -1)
    cv2.rectangle(img, (w - 20, (2 * i) % h), (w - 6, (2 * i) % h + 10), (255, 255, 255), -1)
    return img


def write_video(path: Path, frames: int = VIDEO_FRAMES, fps: float = VIDEO_FPS,
                size: tuple[int, int] = VIDEO_SIZE) -> Path:
    """An MJPG .avi of `frames` frames (every OpenCV build writes and reads it)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened(), "OpenCV cannot write MJPG/AVI here"
    for i in range(frames):
        writer.write(video_frame(i, size))
    writer.release()
    return path


def read_all_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def make_style_file(path: Path, name: str, seed: int, variant: str = "light",
                    config: TransformerConfig = TINY_CONFIG, **meta: object) -> Path:
    """A tiny random style, with instance-norm affine weights randomised so it changes images."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = TransformerNet(config)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.InstanceNorm2d):
                module.weight.copy_(torch.rand(module.weight.shape, generator=gen) * 1.5 + 0.25)
                module.bias.copy_(torch.rand(module.bias.shape, generator=gen) - 0.5)
    info = {"name": name, "title": name.title(), "artist": f"Artist {seed}", "variant": variant, **meta}
    save_style(path, net, info, style_targets={})
    return path


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def video_file(media_dir: Path) -> Path:
    """24 frames of 96x64 at 12 fps (2 s), MJPG in AVI."""
    return write_video(media_dir / "clip.avi")


@pytest.fixture(scope="session")
def short_video_file(media_dir: Path) -> Path:
    """6 frames at 30 fps (0.2 s): ends quickly, for the loop-at-end tests."""
    return write_video(media_dir / "short.avi", frames=6, fps=30.0)


@pytest.fixture(scope="session")
def style_files(media_dir: Path) -> dict[str, Path]:
    """Two different tiny styles, "alpha" and "beta" (both "light" variants)."""
    folder = media_dir / "styles"
    folder.mkdir()
    return {
        "alpha": make_style_file(folder / "alpha.pt", "alpha", seed=1),
        "beta": make_style_file(folder / "beta.pt", "beta", seed=2),
    }


@pytest.fixture(scope="session")
def style_models(style_files: dict[str, Path]) -> dict[str, StyleModel]:
    return {name: load_style(path) for name, path in style_files.items()}


def write_timed_video(path: Path, times: list[float], rate: Fraction | None = None,
                      size: tuple[int, int] = VIDEO_SIZE, sound_seconds: float = 0.0,
                      video_track: bool = True) -> Path:
    """H.264 frames at the given presentation times (seconds) in the container `path`'s suffix
    names, with PyAV: variable or odd frame rates, a stated `rate` or none (Matroska then states
    24), and `sound_seconds` of a 440 Hz tone as AAC. Without `video_track`, an audio-only file."""
    import av

    clock = Fraction(1, 90000)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=rate) if video_track else None
        if video is not None:
            video.width, video.height = size
            video.pix_fmt = "yuv420p"
            video.codec_context.time_base = clock
        audio = container.add_stream("aac", rate=48000, layout="mono") if sound_seconds else None
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(video_frame(i, size)[..., ::-1].copy(), format="rgb24")
            frame.pts, frame.time_base = round(t / clock), clock
            container.mux(video.encode(frame))
        if video is not None:
            container.mux(video.encode(None))
        if audio is not None:
            samples = np.sin(2 * np.pi * 440 * np.arange(round(48000 * sound_seconds)) / 48000).astype(np.float32)
            for start in range(0, len(samples), 1024):
                chunk = av.AudioFrame.from_ndarray(samples[None, start:start + 1024], format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = 48000, start
                container.mux(audio.encode(chunk))
            container.mux(audio.encode(None))
    return path


def video_duration(path: Path) -> float:
    """Seconds from the first frame's start to the last frame's end, from the packets' timestamps
    (the last frame lasts as long as the one before it when the container does not say)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [(p.pts, p.duration) for p in container.demux(stream) if p.size]
    stamps = sorted(pts for pts, _ in packets)
    last = next(duration for pts, duration in packets if pts == stamps[-1]) or stamps[-1] - stamps[-2]
    return float((stamps[-1] - stamps[0] + last) * stream.time_base)
def spoil_weights(path: Path, value: float) -> Path:
    """Set one weight of a style file to `value` (NaN, Inf), as a diverged training run leaves it."""
    payload = torch.load(path, weights_only=True)
    payload["state_dict"][next(iter(payload["state_dict"]))].view(-1)[0] = value
    torch.save(payload, path)
    return path


def deny_access(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """chmod 000 `path`. Root reads it anyway, so as root also refuse what the kernel refuses any
    other user: opening or listing `path` or anything under it, and stat-ing what is inside it."""
    path.chmod(0)
    if os.geteuid() != 0:
        return

    def refusing(real, inside_only: bool):
        def call(target, *args, **kwargs):
            if isinstance(target, (str, os.PathLike)):
                target_path = Path(os.fspath(target))
                if path in target_path.parents or (target_path == path and not inside_only):
                    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(target))
            return real(target, *args, **kwargs)
        return call

    monkeypatch.setattr(builtins, "open", refusing(builtins.open, inside_only=False))
    monkeypatch.setattr(io, "open", refusing(io.open, inside_only=False))
    monkeypatch.setattr(os, "scandir", refusing(os.scandir, inside_only=False))
    monkeypatch.setattr(os, "listdir", refusing(os.listdir, inside_only=False))
    monkeypatch.setattr(os, "stat", refusing(os.stat, inside_only=True))
