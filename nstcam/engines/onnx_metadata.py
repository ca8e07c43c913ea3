"""The metadata an ONNX file carries (ModelProto.metadata_props), read without the `onnx` package.

Why: importing `onnx` costs 0.5-2 s (its ml_dtypes extension), and a launch that only checks
whether a cached export is current would pay it before the first frame. The fields sit at the top
level of the protobuf, so a wire-format walk that skips everything else by its length reads them
in milliseconds. Format: https://protobuf.dev/programming-guides/encoding/ and onnx.proto
(ModelProto field 14: repeated StringStringEntryProto {key = 1, value = 2}).
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

METADATA_PROPS = 14  # ModelProto.metadata_props
KEY, VALUE = 1, 2  # StringStringEntryProto
VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5  # the wire types a ModelProto uses


class WireError(ValueError):
    """The bytes are not a protobuf message."""


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise WireError("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def fields(data: memoryview) -> Iterator[tuple[int, memoryview | int]]:
    """(field number, value) of a message's top-level fields: a length-delimited field's bytes,
    or a scalar's integer value; WireError on anything malformed."""
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == VARINT:
            value, pos = _varint(data, pos)
            yield number, value
        elif wire == LENGTH:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                raise WireError("field runs past the end")
            yield number, data[pos:pos + size]
            pos += size
        elif wire in (FIXED64, FIXED32):
            width = 8 if wire == FIXED64 else 4
            if pos + width > len(data):
                raise WireError("field runs past the end")
            yield number, int.from_bytes(data[pos:pos + width], "little")
            pos += width
        else:
            raise WireError(f"wire type {wire} is not used by ONNX")


def read_metadata(path: Path) -> dict[str, str]:
    """The metadata stored in the ONNX file `path` ({} if it has none or is unreadable)."""
    try:
        data = memoryview(Path(path).read_bytes())
        meta: dict[str, str] = {}
        for number, value in fields(data):
            if number == METADATA_PROPS and isinstance(value, memoryview):
                entry = {n: bytes(v).decode() for n, v in fields(value) if isinstance(v, memoryview)}
                meta[entry.get(KEY, "")] = entry.get(VALUE, "")
        return meta
    except (OSError, WireError, UnicodeDecodeError) as exc:
        log.info("%s: unreadable ONNX file (%s)", path, exc)
        return {}
