"""trainer.dataset: scanning a photo folder, skipping bad files, reproducible crops and order."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trainer.dataset import (
    DatasetError,
    ImageFolderDataset,
    ResumableSampler,
    check_image,
    sample_seed,
    scan_images,
)
from trainer.images import load_image, load_rgb


def _photo(path: Path, w: int = 64, h: int = 64, seed: int = 0) -> Path:
    """A random-ish image: a colour gradient plus noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / max(w - 1, 1), yy * 255 / max(h - 1, 1), np.full_like(xx, seed * 37 % 256)], -1)
    arr = np.clip(base + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture
def messy(tmp_path: Path) -> Path:
    """4 good images (2 nested), and one of each kind of bad file."""
    root = tmp_path / "photos"
    _photo(root / "a.jpg", seed=1)
    _photo(root / "b.png", 80, 48, seed=2)
    _photo(root / "trip" / "c.jpeg", seed=3)
    _photo(root / "trip" / "deeper" / "d.JPG", 48, 100, seed=4)
    (root / "random.jpg").write_bytes(np.random.default_rng(0).bytes(2000))
    whole = _photo(tmp_path / "whole.jpg", 128, 128, seed=5).read_bytes()
    (root / "trip" / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    _photo(root / "tiny.png", 8, 8, seed=6)
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.jpg").write_bytes(b"macOS resource fork junk")
    return root


def test_scan_finds_nested_images_and_skips_bad_files_in_one_warning(messy, caplog):
    with caplog.at_level(logging.WARNING, logger="trainer.dataset"):
        result = scan_images(messy)
    names = [p.relative_to(messy).as_posix() for p in result.paths]
    assert names == ["a.jpg", "b.png", "trip/c.jpeg", "trip/deeper/d.JPG"]
    assert sorted(p.name for p, _ in result.skipped) == ["random.jpg", "tiny.png", "truncated.jpg"]
    assert result.not_images == 1  # notes.txt; the hidden file is not even counted
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "skipped 3" in message and "ignored 1" in message and "using 4" in message
    assert "random.jpg" in message  # examples are named
    reasons = dict((p.name, why) for p, why in result.skipped)
    assert "too small" in reasons["tiny.png"] and "truncated" in reasons["truncated.jpg"]


def test_scan_without_problems_is_silent(tmp_path, caplog):
    _photo(tmp_path / "x.jpg")
    with caplog.at_level(logging.WARNING):
        assert len(scan_images(tmp_path).paths) == 1
    assert not caplog.records


@pytest.mark.parametrize("setup, words", [
    (lambda d: None, "no image files"),
    (lambda d: (d / "readme.txt").write_text("hi"), "no image files"),
    (lambda d: (d / "bad.jpg").write_bytes(b"nope"), "none usable"),
])
def test_folder_without_usable_images_is_a_clear_error(tmp_path, setup, words):
    root = tmp_path / "empty"
    root.mkdir()
    setup(root)
    with pytest.raises(DatasetError, match=words):
        scan_images(root)


def test_missing_dataset_or_a_file_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        scan_images(tmp_path / "nope")
    f = _photo(tmp_path / "one.jpg")
    with pytest.raises(DatasetError, match="not a folder"):
        scan_images(f)


def test_check_image_accepts_a_jpeg_with_padding_after_its_end_marker(tmp_path):
    p = _photo(tmp_path / "padded.jpg")
    p.write_bytes(p.read_bytes() + b"\0" * 100)
    assert check_image(p) is None


def test_items_are_square_crops_in_unit_range_and_reproducible(tmp_path):
    paths = [_photo(tmp_path / "wide.png", 90, 40, seed=1), _photo(tmp_path / "small.png", 36, 50, seed=2)]
    ds = ImageFolderDataset(paths, 48)
    for i in range(2):
        x = ds[(i, 123)]
        assert x.shape == (3, 48, 48) and x.dtype == torch.float32
        assert 0.0 <= x.min() and x.max() <= 1.0
        assert torch.equal(x, ds[(i, 123)])  # same seed, same crop and flip
    # Different seeds give different crops of the wide image (some of 20 seeds must differ).
    assert any(not torch.equal(ds[(0, 0)], ds[(0, s)]) for s in range(1, 20))
    u8 = ImageFolderDataset(paths, 48, uint8=True)[(0, 123)]
    assert u8.dtype == torch.uint8 and torch.equal(u8.float() / 255, ds[(0, 123)])


def test_center_crop_without_flip_is_deterministic(tmp_path):
    p = _photo(tmp_path / "wide.png", 90, 40)
    ds = ImageFolderDataset([p], 32, random_crop=False, flip=False)
    assert torch.equal(ds[(0, 1)], ds[(0, 2)])


def test_an_image_that_fails_to_decode_later_is_replaced_with_a_warning(tmp_path, caplog):
    paths = [_photo(tmp_path / "a.png", seed=1), _photo(tmp_path / "b.png", seed=2)]
    ds = ImageFolderDataset(paths, 32, random_crop=False, flip=False)
    expected = ds[1]
    paths[0].write_bytes(b"gone bad")
    with caplog.at_level(logging.WARNING, logger="trainer.dataset"):
        assert torch.equal(ds[0], expected)
    assert "a.png" in caplog.text


def test_16_bit_png_is_scaled_not_clipped_to_white(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    rgb = np.asarray(load_rgb(tmp_path / "deep.png")).astype(float)
    assert rgb.shape == (64, 64, 3)
    assert (rgb == 255).mean() < 0.01  # PIL's plain convert("RGB") makes 99% of it 255
    assert abs(rgb.mean() - 127.5) < 2
    np.testing.assert_allclose(rgb[..., 0], ramp / 257.0, atol=1)
    item = ImageFolderDataset([tmp_path / "deep.png"], 32, random_crop=False, flip=False)[0]
    assert 0.3 < float(item.mean()) < 0.7
    painting = np.asarray(load_image(tmp_path / "deep.png")).astype(float)  # a 16-bit painting too
    assert abs(painting.mean() - 127.5) < 2


@pytest.mark.parametrize("min_side", [None, 32])
def test_exif_orientation_is_applied(tmp_path, min_side):
    """A portrait stored sideways with orientation 6 ("rotate 90 clockwise to view") comes out upright."""
    stored = np.zeros((40, 80, 3), np.uint8)
    stored[:, :40] = 255  # left half white as stored: the top half once turned upright
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = 6
    img.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    upright = load_rgb(tmp_path / "phone.jpg", min_side)
    assert upright.size == (40, 80)
    arr = np.asarray(upright).astype(float)
    assert arr[:40].mean() > 200 and arr[40:].mean() < 50
    item = ImageFolderDataset([tmp_path / "phone.jpg"], 40, random_crop=False, flip=False)[0]
    assert item.shape == (3, 40, 40)
    assert load_image(tmp_path / "phone.jpg").size == (40, 80)  # a painting photographed upright too


def test_sampler_order_depends_only_on_seed_epoch_and_start():
    s = ResumableSampler(10, seed=7)
    s.set_epoch(0)
    epoch0 = list(s)
    assert sorted(i for i, _ in epoch0) == list(range(10))
    assert epoch0 == list(ResumableSampler(10, seed=7))
    s.set_epoch(1)
    epoch1 = list(s)
    assert [i for i, _ in epoch1] != [i for i, _ in epoch0]
    assert epoch1[0][1] == sample_seed(7, 1, epoch1[0][0])
    s.set_start(4)
    assert list(s) == epoch1[4:] and len(s) == 6


def test_sampler_shards_one_permutation_across_ranks():
    shards = []
    for rank in range(2):
        s = ResumableSampler(10, seed=3, rank=rank, world_size=2)
        s.set_epoch(5)
        shards.append([i for i, _ in s])
    assert len(shards[0]) == len(shards[1]) == 5
    assert sorted(shards[0] + shards[1]) == list(range(10))
