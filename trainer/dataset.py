"""The content-image dataset of fast style training: any folder tree of photos.

Scanning (`scan_images`) walks the tree once, keeps files with an image extension and checks each
cheaply (header, size, PIL's `verify`, and for JPEG/PNG that the file is not cut short), so
unusable files are skipped up front, reported in ONE warning, rather than crashing a long run.

Randomness (crop position, flip) never comes from global or per-worker RNG state: every sample is
requested as `(index, seed)` and augmented with `random.Random(seed)`. `ResumableSampler` derives
each epoch's order from `seed + epoch` (it wraps `DistributedSampler`, so multi-process runs shard
the same permutation) and each sample's seed from `(seed, epoch, index)`; it can start part-way
into an epoch. Together that makes the batch sequence a pure function of (seed, epoch, position),
independent of DataLoader workers, so a resumed run sees exactly the batches an uninterrupted one
would.
"""
from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, DistributedSampler, Sampler

from trainer.images import load_rgb

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"}
)
MIN_SIZE = 32  # images whose short side is below this are skipped
_EXAMPLES = 3  # how many skipped files the warning names
_JPEG = {".jpg", ".jpeg", ".jpe", ".jfif"}


class DatasetError(ValueError):
    """The dataset folder is missing or holds no usable image; the message says which."""


@dataclass
class ScanResult:
    """Usable images (sorted) and the files that were passed over, with the reason for each."""

    root: Path
    paths: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    not_images: int = 0  # files without an image extension (annotations, READMEs, ...)

    def summary(self) -> str | None:
        """The one-line warning about skipped files, or None if nothing was skipped."""
        if not self.skipped and not self.not_images:
            return None
        parts = []
        if self.skipped:
            examples = "; ".join(f"{_rel(p, self.root)}: {why}" for p, why in self.skipped[:_EXAMPLES])
            more = f"; ... ({len(self.skipped) - _EXAMPLES} more)" if len(self.skipped) > _EXAMPLES else ""
            parts.append(
                f"skipped {len(self.skipped)} unusable image file(s) (unreadable, corrupt, truncated "
                f"or smaller than {MIN_SIZE} px) in {self.root}: {examples}{more}"
            )
        if self.not_images:
            parts.append(f"ignored {self.not_images} file(s) without an image extension")
        return "; ".join(parts) + f"; using {len(self.paths)} image(s)"


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _walk(root: Path) -> Iterator[Path]:
    """Every non-hidden file under `root`, following directory links but never in a loop."""
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):  # skips macOS "._x.jpg" resource forks, thumbnails caches
                yield Path(dirpath) / name


def check_image(path: Path, min_size: int = MIN_SIZE) -> str | None:
    """None if `path` looks like a usable image, else a short reason. Does not decode pixels."""
    try:
        with Image.open(path) as img:
            w, h = img.size
            img.verify()
    except Exception as exc:  # PIL raises many types (OSError, SyntaxError, struct.error, ...)
        return f"not a readable image ({type(exc).__name__}: {str(exc).strip()[:80]})"
    if min(w, h) < min_size:
        return f"too small ({w}x{h})"
    suffix = path.suffix.lower()
    if suffix in _JPEG and not _jpeg_has_end(path):
        # PIL's verify() does not read JPEG scan data; a cut-off download would only fail when
        # decoded mid-training. A complete JPEG ends with the EOI marker FF D9 (some writers
        # append a little padding after it), and FF D9 cannot occur inside entropy-coded data.
        return "truncated (no JPEG end marker)"
    return None


def _jpeg_has_end(path: Path, tail: int = 4096) -> bool:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - tail))
        return b"\xff\xd9" in f.read()


def scan_images(root: str | Path, min_size: int = MIN_SIZE, threads: int = 8) -> ScanResult:
    """All usable images under `root` (recursive, sorted). Raises DatasetError if there are none.

    Logs one warning naming how many files were skipped and a few examples.
    """
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"dataset folder {root} does not exist")
    if not root.is_dir():
        raise DatasetError(f"dataset {root} is not a folder")
    candidates, not_images = [], 0
    for path in _walk(root):
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            candidates.append(path)
        else:
            not_images += 1
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:  # I/O bound: threads suffice
        reasons = list(pool.map(lambda p: check_image(p, min_size), candidates))
    result = ScanResult(root=root, paths=[], not_images=not_images)
    for path, reason in zip(candidates, reasons):
        if reason is None:
            result.paths.append(path)
        else:
            result.skipped.append((path, reason))
    if (message := result.summary()) is not None:
        logger.warning(message)
    if not result.paths:
        found = (
            f"{len(result.skipped)} image file(s), none usable" if result.skipped
            else f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS))})"
        )
        raise DatasetError(f"dataset folder {root} holds {found}")
    return result


class ImageFolderDataset(Dataset):
    """Square crops of the images in `paths`, as (3, S, S) tensors.

    Each image's short side is resized to `image_size`, then a square is cropped (at a random
    position when `random_crop`, else centred) and flipped horizontally with probability 1/2 when
    `flip`. Items are float in [0, 1], or uint8 in [0, 255] with `uint8=True` (a quarter of the
    bytes to pin and copy to a GPU; convert there). Index with `(index, seed)` for reproducible
    augmentation, or with a plain int (seed = index).
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        image_size: int,
        random_crop: bool = True,
        flip: bool = True,
        uint8: bool = False,
    ) -> None:
        if image_size < 1:
            raise ValueError(f"image_size must be positive, got {image_size}")
        if not paths:
            raise DatasetError("no images")
        self.paths = [Path(p) for p in paths]
        self.image_size = image_size
        self.random_crop = random_crop
        self.flip = flip
        self.uint8 = uint8
        self._warned: set[int] = set()

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item: int | tuple[int, int]) -> torch.Tensor:
        index, seed = item if isinstance(item, tuple) else (item, item)
        rng = random.Random(seed)
        img = self._load(index)
        img = self._resize(img)
        w, h = img.size
        s = self.image_size
        if self.random_crop:
            left, top = rng.randint(0, w - s), rng.randint(0, h - s)
        else:
            left, top = (w - s) // 2, (h - s) // 2
        img = img.crop((left, top, left + s, top + s))
        if self.flip and rng.random() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        t = torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).contiguous()
        return t if self.uint8 else t.float().div_(255.0)

    def _resize(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        scale = self.image_size / min(w, h)
        # max() guards against rounding the short side one pixel below the crop size.
        size = (max(self.image_size, round(w * scale)), max(self.image_size, round(h * scale)))
        return img if size == (w, h) else img.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)

    def _load(self, index: int) -> Image.Image:
        # The scan catches nearly all bad files; one that still fails to decode (damaged in the
        # middle, or changed since) is replaced by its neighbour, deterministically, with a warning.
        for offset in range(len(self.paths)):
            i = (index + offset) % len(self.paths)
            try:
                return load_rgb(self.paths[i], self.image_size)
            except Exception as exc:
                if i not in self._warned:
                    self._warned.add(i)
                    logger.warning("cannot decode %s (%s); using another image instead", self.paths[i], exc)
        raise DatasetError("no image of the dataset can be decoded")


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The augmentation seed of dataset item `index` in `epoch`: stable across runs and platforms."""
    return random.Random(f"{seed}:{epoch}:{index}").getrandbits(63)


class ResumableSampler(Sampler[tuple[int, int]]):
    """Yields `(index, augmentation seed)` in an order fixed by `seed + epoch`, from any position.

    Wraps `DistributedSampler` (shuffle, `seed`, `num_replicas=world_size`, `rank`), so with one
    process it is a seeded shuffle and with several each rank gets its shard of the same
    permutation. Call `set_epoch(e)` before each epoch and `set_start(n)` to skip the first `n`
    items of this rank's share of the epoch (those already trained on before a resume).
    """

    def __init__(self, size: int, seed: int, rank: int = 0, world_size: int = 1, shuffle: bool = True) -> None:
        self.seed = seed
        self.inner = DistributedSampler(
            range(size), num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed, drop_last=False
        )
        self.epoch = 0
        self.start = 0

    @property
    def per_epoch(self) -> int:
        """Items per epoch for this rank (before any `set_start`)."""
        return self.inner.num_samples

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.inner.set_epoch(epoch)

    def set_start(self, start: int) -> None:
        if not 0 <= start <= self.per_epoch:
            raise ValueError(f"start {start} outside 0..{self.per_epoch}")
        self.start = start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for index in list(self.inner)[self.start:]:
            yield index, sample_seed(self.seed, self.epoch, index)

    def __len__(self) -> int:
        return self.per_epoch - self.start
