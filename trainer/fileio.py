"""Crash-safe writes and safe reads of the files nstcam makes.

Writes: a kill, a full disk or a read-only folder must never leave a half-written checkpoint,
style file or image behind, nor damage the previous version. Every output goes to a temp file in
the same folder, is fsynced, then renamed over its name (atomic on POSIX); on any error the temp
file is removed and the target is untouched.

Reads: `.pt` files are loaded with `torch.load(weights_only=True)`. A file that needs more than
tensors and plain containers (a foreign or malicious pickle) is refused with `UnsafeFileError`
instead of torch's message, which suggests `weights_only=False` -- the unsafe thing.
"""
from __future__ import annotations

import contextlib
import fcntl
import io
import os
import pickletools
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

# torch's UnpicklingError for a file its weights-only unpickler refuses starts with this.
_WEIGHTS_ONLY_REFUSAL = "Weights only load failed"


class UnsafeFileError(ValueError):
    """A pickle holding Python objects other than tensors and plain containers; not loaded,
    since unpickling such objects can run arbitrary code. The message says so, without a path."""


class CorruptFileError(ValueError):
    """A file torch cannot read (truncated, damaged, not a torch file); the message is the reason
    in one short sentence, without a path."""


@contextlib.contextmanager
def atomic_write(path: str | Path, *, overwrite: bool = True) -> Iterator[IO[bytes]]:
    """A binary file object whose content appears at `path` only once the block ends without error.

    With `overwrite=False` an existing `path` is never replaced: FileExistsError is raised at the
    end instead (and nothing is left behind). Creates the parent folder. The file is made 0644
    (mkstemp makes 0600; outputs are meant to be shared).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        if overwrite:
            os.replace(tmp, path)
        else:
            _publish_exclusive(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _publish_exclusive(tmp: str, path: Path) -> None:
    """Give `tmp` the name `path` unless `path` exists (FileExistsError)."""
    try:
        os.link(tmp, path)  # atomic and fails if path exists
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links (FAT, some network shares)
        with open(path, "xb"):  # claim the name, then fill it atomically
            pass
        os.replace(tmp, path)


def atomic_write_bytes(path: str | Path, data: bytes | bytearray | memoryview, *, overwrite: bool = True) -> None:
    """Write `data` to `path` atomically (see `atomic_write`)."""
    with atomic_write(path, overwrite=overwrite) as f:
        f.write(data)


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """`torch.save` atomically. Serialised in memory first, so a full disk is one plain OSError
    (ENOSPC) rather than torch's chained "enforce fail" RuntimeError."""
    import torch  # here, not at the top: the torch-free runtime writes its files with this module

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getbuffer())


def atomic_save_image(image: Image.Image, path: str | Path, *, overwrite: bool = True) -> None:
    """Save a PIL image atomically (see `atomic_write`), in the format its extension names."""
    from PIL import Image

    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown image format {path.suffix!r}; use e.g. .png or .jpg")
    with atomic_write(path, overwrite=overwrite) as f:
        image.save(f, format=fmt)


def check_writable(path: str | Path) -> None:
    """Create `path`'s folder and a scratch file in it, then remove the file.

    Raises OSError (read-only folder, no permission, a file where the folder should be) before
    any long work whose result would then be lost.
    """
    folder = Path(path).parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{Path(path).name}.", suffix=".check", dir=folder)
    os.close(fd)
    os.unlink(tmp)


class LockedError(OSError):
    """Another process holds the lock; the message names its pid when known."""


@contextlib.contextmanager
def exclusive_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (created, holding our pid) for the block.

    An flock: the kernel releases it when the process ends however it ends, so a lock file left
    by a killed process is stale and taken over, never a reason to refuse. Raises LockedError at
    once if a live process holds it. The file is removed on release (after checking, under the
    lock, that the name still means the file we locked, so a waiter never locks a removed file).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            raise LockedError(f"held by process {holder}" if holder.isdigit() else "held by another process") \
                from None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # removed or replaced by the holder that just released it: lock the new one
    try:
        with contextlib.suppress(OSError):  # the pid only informs; a full disk must not stop the lock
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)


def load_tensors(path: str | Path) -> Any:
    """`torch.load(path, map_location="cpu", weights_only=True)`, refusing unsafe pickles cleanly.

    Raises UnsafeFileError for a pickle the weights-only unpickler refuses and CorruptFileError
    for anything else unreadable (torch raises many types on garbage). torch's UserWarnings about the
    pickle protocol of such files are silenced (the refusal says what matters).
    """
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\._weights_only_unpickler")
            import torch

            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        text = str(exc)
        if not text.startswith(_WEIGHTS_ONLY_REFUSAL):
            raise CorruptFileError(_first_sentence(text) or type(exc).__name__) from None
        if "GLOBAL" in text or _is_whole_pickle(path):
            raise UnsafeFileError(
                "refused for safety (it holds Python objects other than tensors, and loading them could run code)"
            ) from None
        # Garbage the unpickler choked on: do not pass on torch's advice (weights_only=False).
        raise CorruptFileError("not a PyTorch file, or a damaged one") from None


def _first_sentence(text: str) -> str:
    """"PytorchStreamReader failed ...: failed finding central directory. This is an internal
    miniz error. If you are seeing..." -> its first sentence."""
    line = (text.strip().splitlines() or [""])[0]
    return line.split(". ", 1)[0].rstrip(".")


def _is_whole_pickle(path: str | Path) -> bool:
    """Whether `path` is one well-formed pickle (parsed, not run): tells a foreign pickle the
    weights-only unpickler refused from garbage, which it refuses just the same."""
    try:
        with open(path, "rb") as f:
            for _ in pickletools.genops(f):
                pass
    except Exception:  # any parse error: not a pickle
        return False
    return True
