"""The suite's fixtures and the generated data they hold: short videos, tiny styles, small disks.

Registered for every test module by conftest.py (`pytest_plugins`), so tests name a fixture as a
parameter and import nothing for it; helpers (`make_style`, `write_video`, ...) are imported from
here. Everything is made on the fly: nothing is downloaded, nothing comes from ../shared. The
tiny styles are TransformerNets of width 4 with one residual block, random weights, randomised
instance-norm scales and shifts, and a per-style output tint, so each style gives a clearly
different picture; their Gram targets for
efficientnet-lite0 come from a generated 64 px image through the real loss net.
"""
from __future__ import annotations

import builtins
import contextlib
import errno
import functools
import io
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from trainer.stylefile import StyleModel, load_style, save_style
from trainer.transformer import TransformerConfig, TransformerNet

VIDEO_SIZE = (96, 64)  # (w, h)
VIDEO_FPS = 12.0
VIDEO_FRAMES = 24
TINY_CONFIG = TransformerConfig(width=4, res_blocks=1, outer_kernel=3)
# Output bias per style (RGB, added to the last convolution): makes styles easy to tell apart.
STYLE_TINTS = {
    "ember": (0.55, 0.05, -0.25),
    "glacier": (-0.25, 0.15, 0.55),
    "moss": (-0.1, 0.45, -0.2),
}


# ------------------------------------------------------------------------------ the process

@contextlib.contextmanager
def _single_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread_module() -> Iterator[None]:
    """`one_torch_thread` for a whole module, so module-scoped fixtures run single-threaded too."""
    with _single_torch_thread():
        yield


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Run torch single-threaded during every test, then restore (a test may change it).

    The tests push tiny tensors through tiny networks, where torch's intra-op thread team costs
    more than it gives; on a shared, oversubscribed 2-core machine OpenMP's spinning barriers can
    slow a 1 ms forward pass a thousandfold (seen: ~1 s; a 96x64 frame 0.4-0.6 s with 2 threads
    against 1 ms with 1), which would make the timing-sensitive pipeline tests slow and flaky.
    """
    with _single_torch_thread():
        yield


@pytest.fixture(autouse=True)
def no_export_process_left() -> Iterator[None]:
    """End the late exports' process (nstcam.engines.quick_start.export_elsewhere) a test started:
    the next test starts its own, with that test's cache and environment."""
    yield
    from nstcam.engines.quick_start import stop_exports

    stop_exports()


@pytest.fixture(scope="session", autouse=True)
def private_settings(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The window's remembered settings (QSettings) go to a temporary folder, never the user's."""
    try:
        from PySide6.QtCore import QSettings
    except ImportError:  # a machine without Qt (the GPU check) runs no window test
        return
    folder = str(tmp_path_factory.mktemp("settings"))
    for fmt in (QSettings.Format.IniFormat, QSettings.Format.NativeFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, folder)


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The app's cache (ONNX exports, remembered memory formats) goes to a temporary folder, for
    this process and the app processes tests start, never the user's (on every platform)."""
    before = os.environ.get("NSTCAM_CACHE_DIR")
    os.environ["NSTCAM_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if before is None:
        del os.environ["NSTCAM_CACHE_DIR"]
    else:
        os.environ["NSTCAM_CACHE_DIR"] = before


@pytest.fixture
def no_leftover_threads() -> Iterator[None]:
    """Fails the test if it leaves a thread running (every worker must be joined)."""
    before = set(threading.enumerate())
    yield
    leftover = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not leftover, f"threads left running: {leftover}"


# ----------------------------------------------------------------------------------- videos

def video_frame(i: int, size: tuple[int, int] = VIDEO_SIZE) -> np.ndarray:
    """Frame i of the test clip: moving shapes on a gradient, asymmetric so mirroring shows."""
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = np.linspace(40, 200, w, dtype=np.uint8)[None, :]
    img[..., 2] = np.linspace(200, 40, h, dtype=np.uint8)[:, None]
    cv2.circle(img, ((5 + 3 * i) % w, h // 3), max(3, h // 8), (0, 255, 0), -1)
    cv2.rectangle(img, (w - 20, (2 * i) % h), (w - 6, (2 * i) % h + 10), (255, 255, 255), -1)
    return img


def app_video_frame(i: int, size: tuple[int, int] = VIDEO_SIZE) -> np.ndarray:
    """Frame i of the app tests' clip: shapes crossing on a flat colour that slowly changes."""
    w, h = size
    img = np.full((h, w, 3), (40 + 3 * i % 200, 90, 160), np.uint8)
    cx = int((i * 5) % w)
    cv2.circle(img, (cx, h // 2), max(4, h // 5), (0, 220, 255), -1)
    cv2.rectangle(img, (w - 1 - cx, 4), (w - 1 - cx + w // 6, 4 + h // 4), (255, 255, 255), -1)
    return img


def write_video(path: Path, frames: int = VIDEO_FRAMES, fps: float = VIDEO_FPS, size: tuple[int, int] = VIDEO_SIZE,
                draw: Callable[[int, tuple[int, int]], np.ndarray] = video_frame) -> Path:
    """An MJPG .avi of `frames` frames `draw(i, size)` (every OpenCV build writes and reads it)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened(), "OpenCV cannot write MJPG/AVI here"
    for i in range(frames):
        writer.write(draw(i, size))
    writer.release()
    return path


def make_video(path: Path, frames: int = 30, size: tuple[int, int] = VIDEO_SIZE, fps: float = 30.0) -> Path:
    """The app tests' clip: `app_video_frame`s, 30 at 30 fps (1 s) unless told otherwise."""
    return write_video(path, frames=frames, fps=fps, size=size, draw=app_video_frame)


def iter_frames(path: Path) -> Iterator[np.ndarray]:
    """The BGR frames of a video file, decoded one at a time with OpenCV."""
    cap = cv2.VideoCapture(str(path))
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield frame
    finally:
        cap.release()


def read_all_frames(path: Path) -> list[np.ndarray]:
    return list(iter_frames(path))


def count_frames(path: Path) -> tuple[int, tuple[int, int]]:
    """(frames decoded, (w, h)) of a video file."""
    n, size = 0, (0, 0)
    for n, frame in enumerate(iter_frames(path), 1):
        size = (frame.shape[1], frame.shape[0])
    return n, size


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


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 30-frame 96x64 clip at 30 fps, made once per test module."""
    return make_video(tmp_path_factory.mktemp("video") / "clip.avi")


# ----------------------------------------------------------------------------------- styles

def pattern_image(size: int = 64, seed: int = 0) -> np.ndarray:
    """A stripy, blobby RGB uint8 image with some texture: a stand-in painting."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    r = 0.5 + 0.5 * np.sin(2 * np.pi * (3 * x + rng.random()))
    g = 0.5 + 0.5 * np.sin(2 * np.pi * (5 * y + 2 * x + rng.random()))
    b = 0.5 + 0.5 * np.cos(2 * np.pi * 7 * (x * y) + rng.random())
    img = np.stack([r, g, b], -1) * 0.8 + 0.2 * rng.random((size, size, 3))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


@functools.cache
def style_targets(seed: int = 0) -> dict[str, torch.Tensor]:
    """efficientnet-lite0 Gram targets of `pattern_image(seed)` (computed once per seed)."""
    from trainer.images import rgb_array_to_tensor
    from trainer.perceptual import PerceptualLoss

    loss = PerceptualLoss(_loss_net(), 1.0, 1.0)
    return loss.compute_style_targets(rgb_array_to_tensor(pattern_image(64, seed)))


@functools.cache
def _loss_net() -> torch.nn.Module:
    from trainer.lossnets import build_loss_net

    return build_loss_net("efficientnet-lite0")


def make_style(path: Path, name: str, *, seed: int = 0, variant: str = "light", title: str | None = None,
               artist: str = "Test Painter", with_targets: bool = True,
               config: TransformerConfig = TINY_CONFIG, **meta: object) -> Path:
    """Write a tiny random style file (see the module's docstring); returns its path.

    `with_targets` stores efficientnet-lite0 Gram targets, which the snapshot and training
    features need; `meta` adds or overrides metadata fields (None leaves a field out).
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = TransformerNet(config)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.InstanceNorm2d):
                module.weight.copy_(torch.rand(module.weight.shape, generator=gen) * 1.5 + 0.25)
                module.bias.copy_(torch.rand(module.bias.shape, generator=gen) - 0.5)
        last = net.decoder[-1][1]  # ConvLayer(w, 3, k) -> its Conv2d
        tint = STYLE_TINTS.get(name, tuple(np.random.default_rng(seed).uniform(-0.4, 0.4, 3)))
        last.bias.copy_(torch.tensor(tint, dtype=torch.float32) + 0.5)
    info = {"name": name, "title": title or name.title(), "artist": artist, "year": 1900 + seed,
            "variant": variant, **meta}
    info = {key: value for key, value in info.items() if value is not None}
    targets = {"efficientnet-lite0": style_targets(seed % 3)} if with_targets else {}
    save_style(path, net, info, targets)
    return path


def make_style_file(path: Path, name: str, seed: int, variant: str = "light", **kwargs: object) -> Path:
    """`make_style` as the registry tests want it: no Gram targets, no year, artist "Artist <seed>"."""
    return make_style(path, name, seed=seed, variant=variant,
                      **{"with_targets": False, "artist": f"Artist {seed}", "year": None, **kwargs})


def make_styles_dir(folder: Path, names: tuple[str, ...] = ("ember", "glacier", "moss"),
                    broken: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        make_style(folder / f"{name}.pt", name, seed=i)
    if broken:
        (folder / "broken.pt").write_bytes(b"this is not a style file")
    return folder


@pytest.fixture(scope="module")
def styles_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three tiny styles in a folder ("ember", "glacier", "moss"), made once per test module."""
    return make_styles_dir(tmp_path_factory.mktemp("styles"))


@pytest.fixture(scope="session")
def style_files(media_dir: Path) -> dict[str, Path]:
    """Two different tiny styles, "alpha" and "beta" (both "light" variants, no Gram targets)."""
    folder = media_dir / "styles"
    folder.mkdir()
    return {
        "alpha": make_style_file(folder / "alpha.pt", "alpha", seed=1),
        "beta": make_style_file(folder / "beta.pt", "beta", seed=2),
    }


@pytest.fixture(scope="session")
def style_models(style_files: dict[str, Path]) -> dict[str, StyleModel]:
    return {name: load_style(path) for name, path in style_files.items()}


@pytest.fixture
def without_microast_graphs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As a lite bundle that lost MicroAST's ONNX graphs: none shipped or cached, and torch (which
    could export them) not importable; the cached encoder session forgotten before and after."""
    from nstcam.engines import instant_onnx

    monkeypatch.setenv("NSTCAM_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` fails
    instant_onnx._encoder_session.cache_clear()
    yield
    instant_onnx._encoder_session.cache_clear()


# ------------------------------------------------------------------------- training data

@pytest.fixture(scope="module")
def training_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(folder of 8 noisy gradient photos, style image)."""
    root = tmp_path_factory.mktemp("faultdata")
    rng = np.random.default_rng(0)
    (root / "photos").mkdir()
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (48, 40 + 4 * i, 3), dtype=np.uint8)).save(root / "photos" / f"{i}.png")
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(root / "style.png")
    return root / "photos", root / "style.png"


# ------------------------------------------------------------------------------ small disks

@contextlib.contextmanager
def _tmpfs(folder: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted on `folder` while in use (skips the test where mounting is not allowed)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB file system (fill it with `fill`)."""
    with _tmpfs(tmp_path / "disk", "size=4m") as folder:
        yield folder


@pytest.fixture
def readonly_dir(tmp_path: Path) -> Iterator[Path]:
    with _tmpfs(tmp_path / "readonly", "ro,size=64k") as folder:
        yield folder


def fill(folder: Path) -> None:
    """Use up every free byte of `folder`'s file system."""
    with open(folder / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


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
