"""Generated test data for the app tests: tiny style files, a short video, a broken style file.

Everything is made on the fly (no downloads, nothing from ../shared): styles are TransformerNets
with width 4 and one residual block, with random weights and a per-style output bias so each
style gives a clearly different picture; their Gram targets for efficientnet-lite0 come from a
generated 64 px image through the real loss net.
"""
from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

TINY = dict(width=4, res_blocks=1, outer_kernel=3)
# Output bias per style (RGB, added to the last convolution): makes styles easy to tell apart.
STYLE_TINTS = {
    "ember": (0.55, 0.05, -0.25),
    "glacier": (-0.25, 0.15, 0.55),
    "moss": (-0.1, 0.45, -0.2),
}


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

    net = _loss_net()
    loss = PerceptualLoss(net, 1.0, 1.0)
    return loss.compute_style_targets(rgb_array_to_tensor(pattern_image(64, seed)))


@functools.lru_cache(maxsize=1)
def _loss_net():
    from trainer.lossnets import build_loss_net

    return build_loss_net("efficientnet-lite0")


def make_style(path: Path, name: str, *, title: str | None = None, artist: str = "Test Painter",
               variant: str = "light", seed: int = 0, with_targets: bool = True) -> Path:
    """Write a tiny style file; returns its path."""
    from trainer.stylefile import save_style
    from trainer.transformer import TransformerConfig, TransformerNet

    torch.manual_seed(seed)
    net = TransformerNet(TransformerConfig(**TINY))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.2)
        last = net.decoder[-1][1]  # ConvLayer(w, 3, k) -> its Conv2d
        tint = STYLE_TINTS.get(name, tuple(np.random.default_rng(seed).uniform(-0.4, 0.4, 3)))
        last.bias.copy_(torch.tensor(tint, dtype=torch.float32) + 0.5)
    meta = {"name": name, "title": title or name.title(), "artist": artist, "year": 1900 + seed,
            "variant": variant}
    targets = {"efficientnet-lite0": style_targets(seed % 3)} if with_targets else {}
    save_style(path, net, meta, targets)
    return path


def make_styles_dir(folder: Path, names=("ember", "glacier", "moss"), broken: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        make_style(folder / f"{name}.pt", name, seed=i)
    if broken:
        (folder / "broken.pt").write_bytes(b"this is not a style file")
    return folder


def make_video(path: Path, frames: int = 30, size: tuple[int, int] = (96, 64), fps: float = 30.0) -> Path:
    """An MJPG .avi of moving shapes, `frames` frames of `size` (w, h)."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened(), "OpenCV cannot write MJPG here"
    for i in range(frames):
        img = np.full((h, w, 3), (40 + 3 * i % 200, 90, 160), np.uint8)
        cx = int((i * 5) % w)
        cv2.circle(img, (cx, h // 2), max(4, h // 5), (0, 220, 255), -1)
        cv2.rectangle(img, (w - 1 - cx, 4), (w - 1 - cx + w // 6, 4 + h // 4), (255, 255, 255), -1)
        writer.write(img)
    writer.release()
    return path


def count_frames(path: Path) -> tuple[int, tuple[int, int]]:
    """(frames decoded, (w, h)) of a video file, read back with OpenCV."""
    cap = cv2.VideoCapture(str(path))
    n, size = 0, (0, 0)
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n += 1
        size = (frame.shape[1], frame.shape[0])
    cap.release()
    return n, size


@pytest.fixture(scope="module")
def styles_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three tiny styles in a folder, made once per test module."""
    return make_styles_dir(tmp_path_factory.mktemp("styles"))


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 30-frame 96x64 clip, made once per test module."""
    return make_video(tmp_path_factory.mktemp("video") / "clip.avi")
