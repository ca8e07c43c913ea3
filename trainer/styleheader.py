"""A style file's header, read without torch: its format, its metadata and the error type for a
file that is no style file.

Kept apart from trainer.stylefile (which needs torch to load the weights) so that a launch that
runs ONNX Runtime can tell which style a `.pt` file holds, and find or plan its export, before
torch is imported (nstcam.engines.onnx_export.exported_style).
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

FORMAT = "nstcam-style"
VERSION = 1
MAX_HEADER_BYTES = 1 << 20  # the pickle without the tensors' data; a style file's is about 8 KB


class StyleFileError(ValueError):
    """A style file is missing, corrupt, truncated or not a style file; the message says which."""


class _HeaderUnpickler(pickle.Unpickler):
    """Reads a style file's pickle without its tensors: storages stay unread, the globals
    torch.save writes for tensors become inert stand-ins, and any other global is refused, so
    nothing in the file runs."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return dict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2") or (module == "torch" and name.endswith("Storage")):
            return _no_tensor
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a style file")

    def persistent_load(self, pid: Any) -> None:
        return None


def _no_tensor(*args: Any) -> None:
    return None


def read_style_meta(path: str | Path) -> dict[str, Any]:
    """A style file's metadata without loading its weights: well under a millisecond, against tens
    for `load_style`, so that the registry chooses among files declaring the same style before
    loading one. StyleFileError when it cannot be read so (then `load_style` tells why)."""
    try:
        with zipfile.ZipFile(path) as archive:
            [record] = [info for info in archive.infolist() if info.filename.endswith("/data.pkl")]
            if record.file_size > MAX_HEADER_BYTES:
                raise ValueError(f"header of {record.file_size} bytes")
            with archive.open(record) as f:
                payload = _HeaderUnpickler(f).load()
    except Exception as exc:  # not a zip, no or several pickles, a refused global, a damaged pickle
        raise StyleFileError(f"{path}: no readable style header ({first_line(exc)})") from None
    meta = payload.get("meta", {}) if isinstance(payload, dict) else None
    if not isinstance(meta, dict) or payload.get("format") != FORMAT:
        raise StyleFileError(f"{path}: not an nstcam style file (no '{FORMAT}' header)")
    return dict(meta)


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line that says something: load_state_dict's "Error(s) in loading state_dict for
    TransformerNet:" only announces the missing keys or size mismatches on the lines after it."""
    if isinstance(exc, KeyError) and exc.args:
        return f"no {exc.args[0]!r} entry"
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = next((line for line in lines if not line.endswith(":")), lines[0] if lines else type(exc).__name__)
    return text if len(text) <= limit else text[: limit - 1] + "…"
